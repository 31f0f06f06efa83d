// Chat prompts: the model's Jinja chat template (tokenizer_config.json / chat_template.jinja)
// rendered with @huggingface/jinja, or a plain prompt when the model has no template.
//
// Prefix reuse: the ask pipeline needs the repository text to be a real prefix of the prompt's
// token ids, so that its KV cache can be kept and reused for the next question. A template wraps
// the user turn in text we do not control, so we render it once around a sentinel content,
// split the result into the text before the user content (`head`) and after it (`tail`, which ends
// with the generation prompt: chatFrame), and the ask pipeline (src/qa/prompt.ts) builds
//     ids = encode(head) ++ repository ids ++ encodeContinuation(question + tail)
// Each part is tokenized on its own, so the ids before the question never depend on it; later parts
// get no dummy prefix space (SentencePiece tokenizers), so at a newline boundary the ids equal those
// of the whole text tokenized at once (test/unit/chat-prompt.test.ts checks this).

import { Template } from '@huggingface/jinja';
import type { TextTokenizer } from './tokenizer';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** What rendering needs from the tokenizer (kept small so tests can pass a template directly). */
export interface ChatTemplateSource {
  chatTemplate: string | null;
  bosToken: string | null;
  eosToken: string | null;
}

export class ChatTemplateError extends Error {}

/** Renders `messages` with the template, ending with the assistant's turn opener (add_generation_prompt). */
export function renderChat(source: ChatTemplateSource, messages: ChatMessage[]): string {
  if (source.chatTemplate === null) return plainPrompt(messages);
  let template: Template;
  try {
    template = new Template(source.chatTemplate);
  } catch (e) {
    throw new ChatTemplateError(`the model's chat template does not parse: ${(e as Error).message}`);
  }
  try {
    return template.render({
      messages,
      add_generation_prompt: true,
      bos_token: source.bosToken ?? '',
      eos_token: source.eosToken ?? '',
    });
  } catch (e) {
    throw new ChatTemplateError(`the model's chat template failed: ${(e as Error).message}`);
  }
}

/** Without a template: the messages' contents, one after another (a base model continues the text). */
function plainPrompt(messages: ChatMessage[]): string {
  return messages.map((m) => m.content).join('\n\n');
}

/** The text around the user content of a single-user-turn chat: prompt = head + content + tail. */
export interface ChatFrame {
  head: string;
  tail: string;
  /** True when a chat template made the frame (its text carries the special tokens, BOS included). */
  templated: boolean;
}

const SENTINEL = '\u0000repo-lens-user-content\u0000';

export function chatFrame(source: ChatTemplateSource, system?: string): ChatFrame {
  if (source.chatTemplate === null) return { head: system ? system + '\n\n' : '', tail: '', templated: false };
  const messages: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
  messages.push({ role: 'user', content: SENTINEL });
  const rendered = renderChat(source, messages);
  const at = rendered.indexOf(SENTINEL);
  if (at < 0 || rendered.indexOf(SENTINEL, at + 1) >= 0) {
    throw new ChatTemplateError('the chat template does not place the user message exactly once');
  }
  return { head: rendered.slice(0, at), tail: rendered.slice(at + SENTINEL.length), templated: true };
}

/** A whole chat prompt as ids (for `generate` with a chat model). */
export function encodeChat(tokenizer: TextTokenizer, messages: ChatMessage[]): number[] {
  const templated = tokenizer.chatTemplate !== null;
  return tokenizer.encode(renderChat(tokenizer, messages), { addSpecialTokens: !templated });
}
