// The model's tokenizer: tokenizer.json through @huggingface/tokenizers, plus the special tokens and
// chat template from tokenizer_config.json. Ids must equal what transformers produces for the same
// folder (test/unit/tokenizer-fixtures.test.ts checks this against ids recorded from transformers).

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ModelError } from './errors';

type Json = Record<string, unknown>;

export interface EncodeOptions {
  /** Add the special tokens the tokenizer's post-processor adds (e.g. BOS for Llama). */
  addSpecialTokens: boolean;
}

export class TextTokenizer {
  /** The folder the tokenizer was read from. */
  readonly dir: string;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** Ids that end a generation: tokenizer_config's eos_token plus generation_config/config eos_token_id. */
  readonly eosIds: ReadonlySet<number>;
  /** Jinja chat template, when the folder has one. */
  readonly chatTemplate: string | null;
  /** Contents of the special tokens (e.g. "<|im_end|>"), longest first. */
  readonly specialTokens: readonly string[];
  readonly vocabSize: number;

  /** Tokenizer for text that continues earlier text (no dummy prefix space); null when it is `hf` itself. */
  private continuation: HfTokenizer | null | undefined;

  private constructor(
    private readonly hf: HfTokenizer,
    private readonly json: Json,
    private readonly config: Json,
    dir: string,
    extraEosIds: number[],
    chatTemplate: string | null,
  ) {
    this.dir = dir;
    this.bosToken = tokenContent(config.bos_token);
    this.eosToken = tokenContent(config.eos_token);
    const eos = new Set(extraEosIds);
    const eosId = this.eosToken === null ? undefined : hf.token_to_id(this.eosToken);
    if (eosId !== undefined) eos.add(eosId);
    this.eosIds = eos;
    this.chatTemplate = chatTemplate;
    const added = [...hf.get_added_tokens_decoder().values()];
    this.specialTokens = added.filter((t) => t.special).map((t) => t.content).sort((a, b) => b.length - a.length);
    this.vocabSize = hf.get_vocab(true).size;
  }

  /** Reads tokenizer.json (required) and tokenizer_config.json, generation_config.json, config.json (optional) from `dir`. */
  static load(dir: string): TextTokenizer {
    const root = resolve(dir);
    const tokenizerFile = join(root, 'tokenizer.json');
    if (!existsSync(tokenizerFile)) throw new ModelError(tokenizerFile, 'missing: the model folder needs tokenizer.json');
    const tokenizerJson = readJson(tokenizerFile);
    const configFile = join(root, 'tokenizer_config.json');
    const config = existsSync(configFile) ? readJson(configFile) : {};
    applyTransformersOverrides(tokenizerJson, config);
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson, config);
    } catch (e) {
      throw new ModelError(tokenizerFile, `not a usable tokenizer (${(e as Error).message})`);
    }
    return new TextTokenizer(hf, tokenizerJson, config, root, readEosIds(root), readChatTemplate(root, config));
  }

  encode(text: string, options: EncodeOptions): number[] {
    return this.hf.encode(text, { add_special_tokens: options.addSpecialTokens }).ids;
  }

  /**
   * Ids for text that directly follows earlier text, without the special tokens and without the
   * dummy prefix space that SentencePiece-style tokenizers put at the start of a text: encoding the
   * two texts apart then gives the ids encoding them together would give at a clean boundary.
   */
  encodeContinuation(text: string): number[] {
    if (this.continuation === undefined) {
      const json = withoutPrefixSpace(this.json);
      this.continuation = json === null ? null : new HfTokenizer(json, this.config);
    }
    return (this.continuation ?? this.hf).encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.hf.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** A streaming detokenizer whose output continues after `contextIds` (e.g. the prompt). */
  streamer(contextIds: readonly number[] = []): StreamingDetokenizer {
    return new StreamingDetokenizer(this, contextIds);
  }
}

/**
 * Turns generated ids into text one token at a time, emitting text only once it is complete.
 * Byte-fallback and byte-level tokens can split one UTF-8 character over several tokens; decoding
 * such a prefix gives U+FFFD, so text ending in U+FFFD is held back until the next token completes it.
 * Decoding a short window (a few earlier tokens + the new ones) and emitting only the difference keeps
 * decoders that depend on neighbours (SentencePiece's leading-space strip) correct.
 */
export class StreamingDetokenizer {
  private ids: number[];
  /** Window start: ids before it are never decoded again. */
  private prefixOffset: number;
  /** Ids before this have had their text emitted. */
  private readOffset: number;

  constructor(private readonly tokenizer: TextTokenizer, contextIds: readonly number[]) {
    // A few context tokens give the decoder the neighbours it needs; their own text is never emitted.
    this.ids = contextIds.slice(-4);
    this.prefixOffset = 0;
    this.readOffset = this.ids.length;
  }

  /** Adds one token; returns the text now complete (possibly empty). */
  push(id: number): string {
    this.ids.push(id);
    return this.emit(false);
  }

  /** Returns whatever is still held back (an incomplete character at the very end stays as U+FFFD). */
  flush(): string {
    return this.emit(true);
  }

  private emit(final: boolean): string {
    const decode = (ids: number[]) => this.tokenizer.decode(ids, { skipSpecialTokens: true });
    const before = decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const now = decode(this.ids.slice(this.prefixOffset));
    if (now.length <= before.length || (!final && now.endsWith('\uFFFD'))) return '';
    if (!now.startsWith(before)) {
      // The decoder rewrote earlier text (rare); emit nothing rather than duplicate or garble.
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return '';
    }
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return now.slice(before.length);
  }
}

function readJson(file: string): Json {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelError(file, `cannot be read (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ModelError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelError(file, 'must hold a JSON object');
  return json as Json;
}

/** A special token in tokenizer_config.json is a string or an AddedToken object with `content`. */
function tokenContent(x: unknown): string | null {
  if (typeof x === 'string') return x;
  if (typeof x === 'object' && x !== null && typeof (x as Json).content === 'string') return (x as Json).content as string;
  return null;
}

function readEosIds(root: string): number[] {
  const ids: number[] = [];
  for (const name of ['generation_config.json', 'config.json']) {
    const file = join(root, name);
    if (!existsSync(file)) continue;
    const v = readJson(file).eos_token_id;
    for (const id of Array.isArray(v) ? v : [v]) if (Number.isInteger(id)) ids.push(id as number);
  }
  return ids;
}

/** transformers prefers a chat_template.jinja file; otherwise tokenizer_config's chat_template (a string or named list). */
function readChatTemplate(root: string, config: Json): string | null {
  const file = join(root, 'chat_template.jinja');
  if (existsSync(file)) return readFileSync(file, 'utf8');
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => typeof x === 'object' && x !== null && (x as Json).name === 'default') ?? t[0];
    const template = (named as Json | undefined)?.template;
    if (typeof template === 'string') return template;
  }
  return null;
}

/**
 * transformers 5 does not use every tokenizer.json as written: its LlamaTokenizer(Fast) class replaces
 * the SentencePiece-era normalizer (Prepend "▁" + Replace " "→"▁") by a Metaspace pre-tokenizer
 * (split off, prepend_scheme "first" unless legacy, "always" for legacy, "never" without add_prefix_space).
 * The difference shows on leading spaces and after special tokens: " " is ["▁"], not ["▁", "▁"].
 * We apply the same rewrite so that our ids equal transformers' ids for such folders.
 */
function applyTransformersOverrides(tokenizerJson: Json, config: Json): void {
  const cls = config.tokenizer_class;
  if (cls !== 'LlamaTokenizer' && cls !== 'LlamaTokenizerFast') return;
  if (!usesMetaspace(tokenizerJson)) return;
  const addPrefixSpace = config.add_prefix_space !== false;
  const legacy = config.legacy === true;
  tokenizerJson.normalizer = null;
  tokenizerJson.pre_tokenizer = {
    type: 'Metaspace',
    replacement: '\u2581',
    prepend_scheme: !addPrefixSpace ? 'never' : legacy ? 'always' : 'first',
    split: false,
  };
}

/** A copy of tokenizer.json that adds no prefix space, or null when it adds none anyway. */
function withoutPrefixSpace(json: Json): Json | null {
  const copy = structuredClone(json);
  let changed = false;
  const visit = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(visit).filter((y) => y !== undefined);
    if (typeof x !== 'object' || x === null) return x;
    const o = x as Json;
    if (o.type === 'Prepend') { changed = true; return undefined; }
    if (o.type === 'Metaspace' && o.prepend_scheme !== 'never') { changed = true; return { ...o, prepend_scheme: 'never', add_prefix_space: false }; }
    if (o.type === 'ByteLevel' && o.add_prefix_space === true) { changed = true; return { ...o, add_prefix_space: false }; }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, visit(v)]));
  };
  copy.normalizer = visit(copy.normalizer) ?? null;
  copy.pre_tokenizer = visit(copy.pre_tokenizer) ?? null;
  return changed ? copy : null;
}

/** Whether the tokenizer marks spaces with "▁" (SentencePiece style) rather than byte-level "Ġ". */
function usesMetaspace(tokenizerJson: Json): boolean {
  return JSON.stringify([tokenizerJson.normalizer, tokenizerJson.pre_tokenizer]).includes('\u2581');
}
