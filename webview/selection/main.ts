// The KV selection panel's page: which files' KV blocks the model attended to while answering.
// Rows are files grouped by folder, columns are layers, colour is how often the file's blocks
// were selected (over the answer, or at the token chosen with the scrubber). A strip shows δ̂ per
// generated token and whether each step's selection was scored or reused. Clicking a file asks
// the extension to open it at the lines that were selected.
import '@vscode-elements/elements/dist/vscode-checkbox/index.js';
import { reportInvalid, vscodeApi } from '../common/vscodeApi';
import { parseSelectionState, parseToWebview, type FromWebview, type SelectionState } from './messages';
import { buildView, selectedLines, stepFrequency, type TraceView } from './model';

const SVG = 'http://www.w3.org/2000/svg';
const api = vscodeApi<SelectionState>();
const state: SelectionState = parseSelectionState(api.getState());
let view: TraceView | null = null;

function post(m: FromWebview): void {
  api.postMessage(m);
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, parent?: Element): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  parent?.appendChild(e);
  return e;
}

function html<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, parent: Element, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}

const app = document.getElementById('app')!;
app.replaceChildren();
const header = html('header', '', app);
const title = html('h2', 'title', header);
const summary = html('p', 'summary', header);
const message = html('p', 'message', app);
const traceView = html('div', 'trace-view', app);
const controls = html('div', 'controls', traceView);
const whole = html('vscode-checkbox', '', controls) as HTMLElement & { checked: boolean };
whole.id = 'whole-answer';
whole.setAttribute('label', 'Whole answer');
const scrubber = html('input', '', controls);
scrubber.id = 'scrubber';
scrubber.type = 'range';
scrubber.min = '0';
scrubber.setAttribute('aria-label', 'Generated token');
const stepLabel = html('span', 'step-label', controls);
stepLabel.id = 'step-label';
const strip = svg('svg', { id: 'steps', role: 'img', 'aria-label': 'δ̂ per generated token; scored steps in one colour, reused steps in another' }, traceView);
const tokens = html('div', 'tokens', traceView);
tokens.id = 'tokens';
const grid = svg('svg', { id: 'grid' }, traceView);
const legend = html('p', 'legend', traceView);
legend.textContent = 'Colour: share of KV heads whose selected blocks include the file (per layer). Click a file to open it at the selected lines.';

whole.addEventListener('change', () => setStep(whole.checked ? null : Number(scrubber.value)));
scrubber.addEventListener('input', () => setStep(Number(scrubber.value)));

function setStep(step: number | null): void {
  state.step = step;
  api.setState(state);
  draw();
}

function fmt(x: number | null): string {
  return x === null ? '—' : x < 0.001 && x > 0 ? x.toExponential(1) : x.toFixed(3);
}

function draw(): void {
  const trace = state.trace;
  title.textContent = state.title || 'KV selection';
  const hasTrace = trace !== null && view !== null;
  traceView.hidden = !hasTrace;
  if (!trace || !view) {
    summary.textContent = '';
    if (!message.textContent) message.textContent = 'No answer yet. Ask the repository a question; this panel then shows which files the model read.';
    return;
  }
  message.textContent = view.files.length ? '' : 'The trace names no workspace files.';
  const s = trace.summary;
  summary.textContent = `${trace.attention.mode} · ${trace.steps.length} tokens · ${trace.promptTokens} prompt tokens in ${trace.manifest.length} blocks of ${trace.kvBlockSize}` +
    ` · effective budget ${(s.effectiveBudget * 100).toFixed(1)}% · δ̂ mean ${fmt(s.meanDeltaHat)}, max ${fmt(s.maxDeltaHat)}`;
  scrubber.max = String(Math.max(0, trace.steps.length - 1));
  scrubber.disabled = trace.steps.length === 0;
  whole.checked = state.step === null;
  if (state.step !== null) scrubber.value = String(state.step);
  const step = state.step;
  if (step === null) {
    stepLabel.textContent = `all ${trace.steps.length} tokens`;
  } else {
    const st = view.steps[step];
    stepLabel.textContent = `token ${step + 1}/${trace.steps.length} ${JSON.stringify(st.text)} · δ̂ ${fmt(st.deltaHat)} · ${st.scored} scored, ${st.reused} reused, ${st.other} dense or fixed`;
  }
  drawStrip(trace.attention.deltaTarget, step);
  drawTokens(step);
  drawGrid(step === null ? view.total : stepFrequency(trace, view.files, step), step);
}

function drawStrip(deltaTarget: number, current: number | null): void {
  const steps = view!.steps;
  const w = 6, h = 40;
  strip.replaceChildren();
  strip.setAttribute('width', String(Math.max(1, steps.length) * w));
  strip.setAttribute('height', String(h + 6));
  const top = Math.max(deltaTarget, ...steps.map((s) => s.deltaHat ?? 0), 1e-9);
  steps.forEach((s, i) => {
    const kind = s.scored > 0 ? 'scored' : s.reused > 0 ? 'reused' : 'other';
    const bh = s.deltaHat === null ? 2 : Math.max(2, (s.deltaHat / top) * h);
    const bar = svg('rect', { x: i * w, y: h - bh, width: w - 1, height: bh, class: `bar ${kind}${i === current ? ' current' : ''}`, 'data-step': i }, strip);
    svg('title', {}, bar).textContent = `token ${i + 1}: δ̂ ${fmt(s.deltaHat)}; ${s.scored} scored, ${s.reused} reused, ${s.other} fixed or dense`;
    bar.addEventListener('click', () => setStep(i));
    svg('rect', { x: i * w, y: h + 2, width: w - 1, height: 3, class: `mark ${kind}` }, strip);
  });
  const y = h - (deltaTarget / top) * h;
  svg('line', { x1: 0, x2: steps.length * w, y1: y, y2: y, class: 'target' }, strip);
}

function drawTokens(current: number | null): void {
  tokens.replaceChildren();
  view!.steps.forEach((s, i) => {
    const t = html('span', i === current ? 'token current' : 'token', tokens, s.text);
    t.dataset.step = String(i);
    t.addEventListener('click', () => setStep(i));
  });
}

const ROW = 18, LABEL = 260, CELL = 28, HEAD = 20;

function drawGrid(freq: number[][], step: number | null): void {
  const { files, numLayers } = view!;
  grid.replaceChildren();
  let y = HEAD;
  for (let l = 0; l < numLayers; l++) {
    svg('text', { x: LABEL + l * CELL + CELL / 2, y: HEAD - 6, class: 'layer', 'text-anchor': 'middle' }, grid).textContent = `L${l}`;
  }
  let folder: string | null = null;
  files.forEach((f, i) => {
    if (f.folder !== folder) {
      folder = f.folder;
      svg('text', { x: 2, y: y + ROW - 5, class: 'folder' }, grid).textContent = `${folder}/`;
      y += ROW;
    }
    const row = svg('g', { class: 'row', 'data-file': f.file, tabindex: 0, role: 'button' }, grid);
    const name = f.file.slice(f.folder === '.' ? 0 : f.folder.length + 1);
    const label = svg('text', { x: 14, y: y + ROW - 5, class: 'file' }, row);
    label.textContent = name.length > 34 ? `…${name.slice(-33)}` : name;
    svg('title', {}, row).textContent = `${f.file}: open at the selected lines`;
    for (let l = 0; l < numLayers; l++) {
      const v = freq[i][l];
      svg('rect', {
        x: LABEL + l * CELL, y: y + 1, width: CELL - 2, height: ROW - 2,
        class: 'cell', 'fill-opacity': (0.08 + 0.92 * v).toFixed(3), 'data-layer': l, 'data-freq': v.toFixed(4),
      }, row);
    }
    const open = () => {
      const lines = selectedLines(state.trace!, f.file, step);
      const first = lines[0] ?? { startLine: 1, endLine: 1 };
      post({ type: 'open', file: f.file, startLine: first.startLine, endLine: first.endLine });
    };
    row.addEventListener('click', open);
    row.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open(); } });
    y += ROW;
  });
  grid.setAttribute('width', String(LABEL + numLayers * CELL + 4));
  grid.setAttribute('height', String(y + 4));
}

window.addEventListener('message', (event: MessageEvent) => {
  try {
    const m = parseToWebview(event.data);
    if (m.type === 'trace') {
      state.trace = m.trace;
      state.title = m.title;
      state.step = null;
      view = buildView(m.trace);
      message.textContent = '';
    } else {
      state.trace = null;
      view = null;
      message.textContent = m.message;
    }
    api.setState(state);
    draw();
  } catch (e) {
    reportInvalid(api, e);
  }
});

if (state.trace) view = buildView(state.trace);
draw();
post({ type: 'ready' });
