// A small Markdown renderer for model answers that builds DOM nodes and never parses HTML:
// every piece of text goes through textContent, so markup in the answer shows as text.
// Covers what answers use: paragraphs, headings, fenced and inline code, lists, quotes, emphasis.
// Links render as their text (no navigation, no remote content). An unclosed fence while
// streaming renders as code to the end, so partial answers look stable as tokens arrive.

type Block =
  | { kind: 'code'; lang: string; text: string }
  | { kind: 'heading'; level: number; text: string }
  | { kind: 'list'; ordered: boolean; items: string[] }
  | { kind: 'quote'; text: string }
  | { kind: 'paragraph'; text: string };

const FENCE = /^\s{0,3}(```|~~~)\s*([\w+-]*)/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*)$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}\d{1,9}[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;

export function parseBlocks(markdown: string): Block[] {
  const lines = markdown.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i].trimStart().startsWith(fence[1])) body.push(lines[i++]);
      i++; // the closing fence (or past the end)
      blocks.push({ kind: 'code', lang: fence[2], text: body.join('\n') });
      continue;
    }
    if (line.trim() === '') { i++; continue; }
    const heading = HEADING.exec(line);
    if (heading) {
      blocks.push({ kind: 'heading', level: heading[1].length, text: heading[2].replace(/\s#+\s*$/, '') });
      i++;
      continue;
    }
    const listStart = BULLET.exec(line) ?? NUMBERED.exec(line);
    if (listStart) {
      const ordered = !BULLET.test(line);
      const pattern = ordered ? NUMBERED : BULLET;
      const items: string[] = [];
      while (i < lines.length) {
        const m = pattern.exec(lines[i]);
        if (m) items.push(m[1]);
        else if (items.length && /^\s{2,}\S/.test(lines[i])) items[items.length - 1] += ' ' + lines[i].trim();
        else break;
        i++;
      }
      blocks.push({ kind: 'list', ordered, items });
      continue;
    }
    if (QUOTE.test(line)) {
      const body: string[] = [];
      for (let m; i < lines.length && (m = QUOTE.exec(lines[i])); i++) body.push(m[1]);
      blocks.push({ kind: 'quote', text: body.join(' ') });
      continue;
    }
    const body: string[] = [];
    while (i < lines.length && lines[i].trim() !== '' && !FENCE.test(lines[i]) && !HEADING.test(lines[i]) && !BULLET.test(lines[i]) && !NUMBERED.test(lines[i]) && !QUOTE.test(lines[i])) {
      body.push(lines[i++].trim());
    }
    blocks.push({ kind: 'paragraph', text: body.join(' ') });
  }
  return blocks;
}

// Inline spans, longest-first: `code`, **strong**, *em* / _em_, [text](target).
const INLINE = /`([^`\n]+)`|\*\*([^*\n]+)\*\*|\b__([^_\n]+)__\b|\*([^*\n]+)\*|\b_([^_\n]+)_\b|\[([^\]\n]+)\]\(([^)\s]*)\)/g;

function appendInline(doc: Document, parent: Node, text: string): void {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index! > last) parent.appendChild(doc.createTextNode(text.slice(last, m.index)));
    if (m[1] !== undefined) parent.appendChild(el(doc, 'code', m[1]));
    else if (m[2] !== undefined || m[3] !== undefined) parent.appendChild(el(doc, 'strong', m[2] ?? m[3]));
    else if (m[4] !== undefined || m[5] !== undefined) parent.appendChild(el(doc, 'em', m[4] ?? m[5]));
    else parent.appendChild(el(doc, 'span', m[6])).setAttribute('title', m[7]);
    last = m.index! + m[0].length;
  }
  if (last < text.length) parent.appendChild(doc.createTextNode(text.slice(last)));
}

function el(doc: Document, tag: string, text?: string): HTMLElement {
  const e = doc.createElement(tag);
  if (text !== undefined) e.textContent = text;
  return e;
}

export function renderMarkdown(doc: Document, markdown: string): DocumentFragment {
  const out = doc.createDocumentFragment();
  for (const b of parseBlocks(markdown)) {
    switch (b.kind) {
      case 'code': {
        const pre = el(doc, 'pre');
        const code = pre.appendChild(el(doc, 'code', b.text));
        if (b.lang) code.dataset.lang = b.lang;
        out.appendChild(pre);
        break;
      }
      case 'heading': {
        const h = el(doc, `h${Math.min(6, b.level + 2)}`); // h3..h6: answers sit under the panel's own headings
        appendInline(doc, h, b.text);
        out.appendChild(h);
        break;
      }
      case 'list': {
        const list = el(doc, b.ordered ? 'ol' : 'ul');
        for (const item of b.items) appendInline(doc, list.appendChild(el(doc, 'li')), item);
        out.appendChild(list);
        break;
      }
      case 'quote': {
        const q = el(doc, 'blockquote');
        appendInline(doc, q, b.text);
        out.appendChild(q);
        break;
      }
      case 'paragraph': {
        const p = el(doc, 'p');
        appendInline(doc, p, b.text);
        out.appendChild(p);
        break;
      }
    }
  }
  return out;
}
