// The chat panel's page: the conversation (questions, streamed answers as Markdown, citations),
// a question box with Ask and Stop. It holds the conversation in webview state so a hidden,
// reloaded or revived panel shows it again; the extension streams updates as validated messages.
import '@vscode-elements/elements/dist/vscode-button/index.js';
import '@vscode-elements/elements/dist/vscode-textarea/index.js';
import '@vscode-elements/elements/dist/vscode-progress-bar/index.js';
import { reportInvalid, vscodeApi } from '../common/vscodeApi';
import { renderMarkdown } from './markdown';
import { parseChatState, parseToWebview, type Action, type ChatState, type CitationSource, type Citation, type FromWebview, type ToWebview, type Turn } from './messages';

const api = vscodeApi<ChatState>();
const state: ChatState = parseChatState(api.getState());
const progress = new Map<number, { phase: string; done: number; total: number }>();

const PHASE_LABELS: Record<string, string> = { load: 'Loading the model', index: 'Reading the workspace', prefill: 'Reading into the model' };
const CITATION_LABELS: Record<CitationSource, string> = { attention: 'Read most:', mention: 'Mentioned:', context: 'In context:' };
const ACTION_LABELS: Record<Action, string> = { openSettings: 'Open Settings', retry: 'Retry', showSelection: 'Show KV Selection' };

function post(message: FromWebview): void {
  api.postMessage(message);
}

function save(): void {
  api.setState(state);
}

const app = document.getElementById('app')!;
app.innerHTML = '';
const turnsEl = app.appendChild(document.createElement('div'));
turnsEl.id = 'turns';
turnsEl.setAttribute('role', 'log');
turnsEl.setAttribute('aria-live', 'polite');
const empty = turnsEl.appendChild(document.createElement('p'));
empty.className = 'empty';
empty.textContent = 'Ask a question about this repository. The whole workspace is read into the model’s context.';

const form = app.appendChild(document.createElement('form'));
form.id = 'ask-form';
const input = form.appendChild(document.createElement('vscode-textarea')) as HTMLElement & { value: string };
input.id = 'question';
input.setAttribute('placeholder', 'Ask about the repository (Enter to send, Shift+Enter for a new line)');
input.setAttribute('rows', '3');
input.setAttribute('resize', 'vertical');
const buttons = form.appendChild(document.createElement('div'));
buttons.className = 'buttons';
const askButton = buttons.appendChild(document.createElement('vscode-button')) as HTMLElement & { disabled: boolean };
askButton.id = 'ask';
askButton.textContent = 'Ask';
const stopButton = buttons.appendChild(document.createElement('vscode-button')) as HTMLElement & { disabled: boolean };
stopButton.id = 'stop';
stopButton.textContent = 'Stop';
stopButton.setAttribute('secondary', '');

function busy(): boolean {
  return state.turns.some((t) => t.status === 'streaming');
}

function updateButtons(): void {
  stopButton.disabled = !busy();
  askButton.disabled = busy();
}

function submit(): void {
  const question = (input.value ?? '').trim();
  if (!question || busy()) return;
  post({ type: 'ask', question });
  input.value = '';
  state.draft = '';
  save();
}

form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
askButton.addEventListener('click', submit);
stopButton.addEventListener('click', () => post({ type: 'stop' }));
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
});
input.addEventListener('input', () => { state.draft = input.value ?? ''; save(); });

function citationButton(c: Citation): HTMLElement {
  const b = document.createElement('button');
  b.className = `citation ${c.source}`;
  b.type = 'button';
  const range = c.startLine === c.endLine ? `${c.startLine}` : `${c.startLine}–${c.endLine}`;
  b.textContent = `${c.file}:${range}`;
  const why = { attention: `${(c.weight * 100).toFixed(1)}% of this answer's KV block selections fell here.`, mention: 'Named in the conversation.', context: 'In the model\'s context.' };
  b.title = `${why[c.source]} Open ${c.file} at lines ${range}.`;
  b.dataset.file = c.file;
  b.addEventListener('click', () => post({ type: 'open', citation: { file: c.file, startLine: c.startLine, endLine: c.endLine } }));
  return b;
}

function renderTurn(turn: Turn): HTMLElement {
  let el = turnsEl.querySelector<HTMLElement>(`.turn[data-turn-id="${turn.id}"]`);
  if (!el) {
    el = turnsEl.appendChild(document.createElement('section'));
    el.className = 'turn';
    el.dataset.turnId = String(turn.id);
  }
  el.dataset.status = turn.status;
  el.replaceChildren();
  const q = el.appendChild(document.createElement('div'));
  q.className = 'question';
  q.textContent = turn.question;
  const a = el.appendChild(document.createElement('div'));
  a.className = 'answer';
  a.appendChild(renderMarkdown(document, turn.answer));
  const p = progress.get(turn.id);
  if (turn.status === 'streaming') {
    const bar = el.appendChild(document.createElement('div'));
    bar.className = 'progress';
    const label = bar.appendChild(document.createElement('span'));
    if (p && turn.answer === '') {
      label.textContent = `${PHASE_LABELS[p.phase]}: ${p.done} / ${p.total}`;
    } else {
      label.textContent = turn.answer === '' ? 'Starting…' : 'Generating…';
    }
    bar.appendChild(document.createElement('vscode-progress-bar'));
  }
  if (turn.status === 'stopped') {
    const s = el.appendChild(document.createElement('div'));
    s.className = 'note';
    s.textContent = 'Stopped.';
  }
  if (turn.error) {
    const e = el.appendChild(document.createElement('div'));
    e.className = 'error';
    e.setAttribute('role', 'alert');
    e.appendChild(document.createElement('span')).textContent = turn.error.message;
    for (const action of turn.error.actions) {
      const b = e.appendChild(document.createElement('vscode-button'));
      b.textContent = ACTION_LABELS[action];
      b.dataset.action = action;
      b.addEventListener('click', () => post({ type: 'action', action, turnId: turn.id }));
    }
  }
  if (turn.citations.length) {
    const c = el.appendChild(document.createElement('div'));
    c.className = 'citations';
    c.appendChild(document.createElement('span')).textContent = CITATION_LABELS[turn.citations[0].source];
    for (const cit of turn.citations) c.appendChild(citationButton(cit));
    if (turn.status === 'done') {
      const b = c.appendChild(document.createElement('vscode-button'));
      b.textContent = 'Show KV Selection';
      b.setAttribute('secondary', '');
      b.dataset.action = 'showSelection';
      b.addEventListener('click', () => post({ type: 'action', action: 'showSelection', turnId: turn.id }));
    }
  }
  return el;
}

// Tokens can arrive faster than frames: re-render each changed turn at most once per frame.
const dirty = new Set<number>();
let frame = 0;
function scheduleRender(id: number): void {
  dirty.add(id);
  if (!frame) frame = requestAnimationFrame(flush);
}
function flush(): void {
  frame = 0;
  for (const id of dirty) {
    const t = state.turns.find((x) => x.id === id);
    if (t) renderTurn(t);
  }
  dirty.clear();
  empty.hidden = state.turns.length > 0;
  updateButtons();
  turnsEl.lastElementChild?.scrollIntoView({ block: 'end' });
  save();
}

function apply(m: ToWebview): void {
  const find = (id: number) => state.turns.find((t) => t.id === id);
  switch (m.type) {
    case 'turn': {
      const i = state.turns.findIndex((t) => t.id === m.turn.id);
      if (i >= 0) state.turns[i] = m.turn;
      else state.turns.push(m.turn);
      scheduleRender(m.turn.id);
      return;
    }
    case 'token': {
      const t = find(m.turnId);
      if (t && t.status === 'streaming') { t.answer += m.text; scheduleRender(t.id); }
      return;
    }
    case 'progress':
      progress.set(m.turnId, { phase: m.phase, done: m.done, total: m.total });
      scheduleRender(m.turnId);
      return;
    case 'end': {
      const t = find(m.turnId);
      if (t) { t.status = m.status; t.citations = m.citations; progress.delete(t.id); scheduleRender(t.id); }
      return;
    }
    case 'error': {
      const t = find(m.turnId);
      if (t) { t.status = 'error'; t.error = { message: m.message, actions: m.actions }; progress.delete(t.id); scheduleRender(t.id); }
      return;
    }
  }
}

window.addEventListener('message', (event: MessageEvent) => {
  let m: ToWebview;
  try {
    m = parseToWebview(event.data);
  } catch (e) {
    reportInvalid(api, e);
    return;
  }
  apply(m);
});

input.value = state.draft;
for (const t of state.turns) renderTurn(t);
empty.hidden = state.turns.length > 0;
updateButtons();
save();
post({ type: 'ready' });
