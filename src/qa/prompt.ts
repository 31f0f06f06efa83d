// The ask prompt, in token ids:
//     head              the chat template's text before the user content (system turn, user-turn
//                       opener, BOS), or BOS and the instructions for a model without a template
//     repository        the context builder's ids (src/context), one segment per file
//     question + tail   the question, then the template's text after the user content (end of the
//                       user turn and the assistant's opener)
// head + repository never depends on the question, so it is a real prefix of every question's
// prompt and the engine keeps its KV between questions (see src/model/chat.ts for the frame).

import { chatFrame } from '../model/chat';
import type { TextTokenizer } from '../model/tokenizer';
import type { ContextTokenizer } from '../context';

const SYSTEM = 'You answer questions about a software repository. Its files follow, each after a "### FILE: <path>" line. ' +
  'Answer from these files and name the files (and lines) you draw on.';

export interface QuestionPrompt {
  /** Ids before the repository text (the manifest's offset). */
  headIds: number[];
  /** Ids after the repository text. */
  suffixIds: number[];
}

export function questionPrompt(tokenizer: TextTokenizer, question: string): QuestionPrompt {
  const templated = tokenizer.chatTemplate !== null;
  // Without a template the instructions simply open the text (and give SentencePiece tokenizers
  // their one dummy prefix space where whole-text encoding would put it).
  const frame = chatFrame(tokenizer, SYSTEM);
  const asked = neutralizeSpecialTokens(tokenizer, question.trim());
  // A base model (no template) continues text: end with a cue for the answer.
  const suffix = templated ? `\nQuestion: ${asked}` : `\nQuestion: ${asked}\nAnswer:`;
  return {
    headIds: tokenizer.encode(frame.head, { addSpecialTokens: !frame.templated }),
    suffixIds: tokenizer.encodeContinuation(suffix + frame.tail),
  };
}

/**
 * The tokenizer the context builder uses: each file's segment continues the text before it (no dummy
 * prefix space), and special-token strings inside files are made inert. One object per tokenizer,
 * so the context builder's token cache (keyed by this object) survives between questions.
 */
export function contextTokenizer(tokenizer: TextTokenizer): ContextTokenizer {
  let adapter = adapters.get(tokenizer);
  if (!adapter) {
    adapter = {
      encode: (text) => tokenizer.encodeContinuation(neutralizeSpecialTokens(tokenizer, text)),
      decode: (ids) => tokenizer.decode(ids),
    };
    adapters.set(tokenizer, adapter);
  }
  return adapter;
}
const adapters = new WeakMap<TextTokenizer, ContextTokenizer>();

/**
 * A file (or a question) that contains e.g. "<|im_end|>" must not end the user turn: the tokenizer
 * would read that text as the special token. A zero-width space after its first character keeps
 * the text readable and makes it ordinary text.
 */
export function neutralizeSpecialTokens(tokenizer: TextTokenizer, text: string): string {
  let out = text;
  for (const special of tokenizer.specialTokens) {
    if (special.length > 1 && out.includes(special)) out = out.split(special).join(special[0] + '\u200b' + special.slice(1));
  }
  return out;
}
