// The evaluation task set: one JSON object per line (JSONL), each a long context, a question
// and the expected answer. `repo-lens eval generate` writes them (generators.ts); `repo-lens eval`
// reads and runs them (run.ts). Reading validates every line and names the file and line.
import { readFileSync, writeFileSync } from 'node:fs';

export type TaskKind = 'passkey' | 'kv-retrieval' | 'variable-tracking' | 'where-defined';
export const TASK_KINDS: readonly TaskKind[] = ['passkey', 'kv-retrieval', 'variable-tracking', 'where-defined'];

export interface EvalTask {
  id: string;
  kind: TaskKind;
  /** The long context (for where-defined: files in the `### FILE: path` layout of src/context). */
  context: string;
  question: string;
  /** Correct when the generated answer contains it (case-insensitive, whitespace-trimmed). */
  answer: string;
  /** The context length in tokens the generator aimed at (with the tokenizer it was given). */
  targetTokens: number;
  /** Where the needed fact sits in the context, 0 (start) to 1 (end). */
  depth: number;
}

export class TaskFileError extends Error {}

export function parseTask(x: unknown, where: string): EvalTask {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new TaskFileError(`${where}: a task must be a JSON object`);
  const o = x as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof o[k] !== 'string') throw new TaskFileError(`${where}: "${k}" must be a string`);
    return o[k] as string;
  };
  const num = (k: string) => {
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) throw new TaskFileError(`${where}: "${k}" must be a number`);
    return o[k] as number;
  };
  const kind = str('kind');
  if (!(TASK_KINDS as readonly string[]).includes(kind)) throw new TaskFileError(`${where}: "kind" must be one of ${TASK_KINDS.join(', ')}`);
  const task: EvalTask = {
    id: str('id'), kind: kind as TaskKind, context: str('context'), question: str('question'), answer: str('answer'),
    targetTokens: num('targetTokens'), depth: num('depth'),
  };
  if (task.answer.trim() === '') throw new TaskFileError(`${where}: "answer" is empty`);
  return task;
}

export function readTasks(file: string): EvalTask[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TaskFileError(`${file}: cannot read (${(e as Error).message})`);
  }
  const tasks: EvalTask[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let x: unknown;
    try {
      x = JSON.parse(line);
    } catch (e) {
      throw new TaskFileError(`${file}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    tasks.push(parseTask(x, `${file}:${i + 1}`));
  });
  if (tasks.length === 0) throw new TaskFileError(`${file}: holds no tasks`);
  return tasks;
}

export function writeTasks(file: string, tasks: readonly EvalTask[]): void {
  writeFileSync(file, tasks.map((t) => JSON.stringify(t)).join('\n') + '\n');
}

/** The generated answer is right when it contains the expected one (case and spacing ignored). */
export function isCorrect(generated: string, expected: string): boolean {
  const norm = (s: string) => s.toLowerCase().replace(/\s+/g, ' ').trim();
  return norm(generated).includes(norm(expected));
}
