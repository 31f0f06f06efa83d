"""Training and held-out samples in the prompt formats Repo Lens uses.

Two prompt forms, both ending with "\\nAnswer:" and answered as " <answer></s>":
  ask   (src/qa/prompt.ts with this model's chat template):
        <s> SYSTEM "\\n\\n" | segment | segment | ... | "\\nQuestion: q\\nAnswer:"
        each file segment "### FILE: path\\n<text>" encoded on its own, as the context builder does.
  eval  (src/eval/run.ts taskPrompt): <s> + encode(context + "\\n\\nQuestion: q\\nAnswer:") in one piece.
Several questions may follow one context (each after the previous answer's </s>): more signal per
long forward pass; the first always sits exactly where the real prompt puts it.

Kinds: repository questions (where is X defined -> path, or path:line; value of constant Y; which
function calls Z) over repositories of real files and generated modules; and the RULER-style
passkey, key-value retrieval and variable tracking of src/eval/generators.ts, in its exact wording.
Identifiers of generated code come from TRAIN_WORDS in training (and, in the where-real-words drill,
from words of real identifiers: real_words) and HELDOUT_WORDS in evaluation.
"""
import random
import re
import zlib
from dataclasses import dataclass, field

# Keep equal to SYSTEM in src/qa/prompt.ts (test/unit/train-format.test.ts checks).
SYSTEM = ('You answer questions about a software repository. Its files follow, each after a "### FILE: <path>" line. '
          'Answer from these files and name the files (and lines) you draw on.')
HEADER_PREFIX = '### FILE: '
# src/eval/generators.ts
HAYSTACK = 'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. '
PASSKEY_INTRO = 'There is an important piece of information hidden inside a lot of irrelevant text. Find it and memorize it. '
EVAL_WORDS = ['parse', 'load', 'render', 'cache', 'token', 'block', 'widget', 'config', 'stream', 'merge', 'index', 'query',
              'buffer', 'layout', 'signal', 'schema', 'route', 'filter', 'vector', 'packet', 'ledger', 'sketch', 'anchor', 'window']
EVAL_PACKAGES = ['core', 'io', 'net', 'ui', 'util', 'store', 'model', 'engine']

_ALL_WORDS = """
account action adapter address agent alert alias amount angle apply archive array asset audit author backup badge
balance batch bucket build bundle button cable calendar callback canvas caption carrier catalog channel chart check
chunk cipher circle client clock cluster codec column command comment commit compare compile context counter credit
cursor custom cycle daemon dashboard datum debug decode default delta depth device dialog digest direct domain draft
driver editor element encode entry error event export factor feature field figure format frame gateway handle header
health helper history hook image import inbox input intent invoice issue item job journal kernel label ladder launch
layer lease level limit link listen locale lock logger lookup mapper marker master matrix member memory message meter
method metric mirror module monitor mount native needle node notice number object offset option order origin output
owner page panel parent patch path payload peer pixel planner plugin pointer policy pool port prefix preview printer
probe process profile project prompt proxy publish queue quota range ranker reader record region registry relay
remote report request reset resolve result review rule runner sample scale scanner scope screen search section sector
select sender server session setting shadow shape share shell socket source space span spec splitter stage state status
step storage string style subject summary switch symbol table target task team template tenant text theme thread ticket
timer title topic trace track tracker transfer tree trigger tuple unit update upload user value variant version view
visit volume watcher worker writer zone
""".split()
_ALL_WORDS = [w for w in _ALL_WORDS if w not in EVAL_WORDS]
# A fixed fifth of the words never names generated code in training.
HELDOUT_WORDS = _ALL_WORDS[::5]
TRAIN_WORDS = [w for i, w in enumerate(_ALL_WORDS) if i % 5]
DIRS = ['src', 'lib', 'app', 'pkg', 'internal', 'server', 'client', 'tools', 'common', 'services'] + EVAL_PACKAGES
VERBS = ['get', 'set', 'make', 'build', 'find', 'read', 'write', 'check', 'parse', 'load', 'update', 'apply', 'resolve',
         'create', 'fetch', 'merge', 'split', 'format', 'validate', 'collect', 'emit', 'open', 'close', 'compute']


@dataclass
class File:
    path: str
    text: str
    defs: list = field(default_factory=list)      # (name, line, 'function' | 'class' | 'variable')
    consts: list = field(default_factory=list)    # (name, value)
    calls: list = field(default_factory=list)     # (caller, callee)


@dataclass
class Sample:
    """A context and its questions; `segments` set for repository contexts (ask form possible)."""
    context: str
    qas: list                      # (question, answer)
    segments: list = None
    kind: str = ''


_CONSONANTS, _VOWELS = 'bcdfghjklmnprstvwz', 'aeiou'


def open_word(r: random.Random) -> str:
    """A made-up word of two or three syllables: generated names that a model cannot have memorized,
    so answering about them means copying from the context."""
    while True:
        w = ''.join(r.choice(_CONSONANTS) + r.choice(_VOWELS) + (r.choice(_CONSONANTS) if r.random() < 0.3 else '')
                    for _ in range(r.randint(2, 3)))
        if w not in EVAL_WORDS and w not in HELDOUT_WORDS:
            return w


class SpaceExhausted(RuntimeError):
    """fresh() found no unused value: a repository of few words has used up its names or paths."""


def fresh(used: set, make, what: str) -> str:
    """make() until it gives something not in `used` (then added), 100 tries at most."""
    for _ in range(100):
        x = make()
        if x not in used:
            used.add(x)
            return x
    raise SpaceExhausted(f'{what} space exhausted')


class Names:
    def __init__(self, r: random.Random, words: list):
        self.r, self.words, self.used = r, words, set()

    def _fresh(self, make):
        return fresh(self.used, make, 'name')

    def snake(self):
        return self._fresh(lambda: '_'.join([self.r.choice(VERBS)] + self.r.sample(self.words, self.r.randint(1, 2))))

    def camel(self):
        return self._fresh(lambda: self.r.choice(VERBS) + ''.join(w.title() for w in self.r.sample(self.words, self.r.randint(1, 2))))

    def pascal(self):
        return self._fresh(lambda: ''.join(w.title() for w in self.r.sample(self.words, 2)))

    def upper(self):
        return self._fresh(lambda: '_'.join(w.upper() for w in self.r.sample(self.words, self.r.randint(2, 3))))

    def word(self):
        return self.r.choice(self.words)


def _const_value(r: random.Random) -> str:
    k = r.random()
    if k < 0.5:
        return str(r.randint(2, 99999))
    if k < 0.8:
        return f"'{r.choice(TRAIN_WORDS + HELDOUT_WORDS)}-{r.randint(1, 999)}'"
    return f'{r.randint(0, 99)}.{r.randint(1, 999)}'


def simple_module(r, names, path) -> File:
    """The where-defined module of src/eval/generators.ts (one to three tiny functions)."""
    lines, defs = [], []
    for _ in range(r.randint(1, 3)):
        name = '_'.join(r.choice(names.words) for _ in range(3))
        if name in names.used:
            continue
        names.used.add(name)
        arg = names.word()
        defs.append((name, len(lines) + 1, 'function'))
        lines += [f'def {name}({arg}):', f'    return [x for x in {arg} if x]', '']
    return File(path, '\n'.join(lines), defs)


def python_module(r, names, path, others: list) -> File:
    lines = [f'"""{names.word().title()} {names.word()} helpers."""', 'import os', '']
    f = File(path, '')
    if others and r.random() < 0.7:
        mod, fn, _ = r.choice(others)
        lines.insert(2, f'from .{mod} import {fn}')
    for _ in range(r.randint(0, 2)):
        c, v = names.upper(), _const_value(r)
        lines.append(f'{c} = {v}')
        f.consts.append((c, v.strip("'")))
    lines.append('')
    local = []
    for _ in range(r.randint(1, 4)):
        if r.random() < 0.25:
            cls, arg = names.pascal(), names.word()
            f.defs.append((cls, len(lines) + 1, 'class'))
            method = names.snake()
            lines += [f'class {cls}:', f'    def __init__(self, {arg}):', f'        self.{arg} = {arg}', '',
                      f'    def {method}(self):', f'        return len(self.{arg})', '', '']
            continue
        name, a, b, v = names.snake(), names.word(), names.word(), names.word()
        if a == b:
            b = b + '_opt'
        f.defs.append((name, len(lines) + 1, 'function'))
        callee = r.choice(local) if local and r.random() < 0.6 else None
        body = [f'def {name}({a}, {b}=None):']
        if callee:
            body.append(f'    {v} = {callee}({a})')
            f.calls.append((name, callee))
        else:
            body.append(f'    {v} = [x for x in {a} if x is not None]')
        body += [f'    if not {v}:', f'        return {b}', f'    return {v}', '', '']
        lines += body
        local.append(name)
    f.text = '\n'.join(lines)
    return f


def ts_module(r, names, path, others: list) -> File:
    lines, f = [], File(path, '')
    if others and r.random() < 0.7:
        mod, fn, _ = r.choice(others)
        lines.append(f"import {{ {fn} }} from './{mod}';")
    lines.append('')
    for _ in range(r.randint(0, 2)):
        c, v = names.upper(), _const_value(r)
        lines.append(f'export const {c} = {v};')
        f.consts.append((c, v.strip("'")))
    lines.append('')
    local = []
    for _ in range(r.randint(1, 4)):
        name, a, v = names.camel(), names.word(), names.word()
        if r.random() < 0.2:
            cls = names.pascal()
            f.defs.append((cls, len(lines) + 1, 'class'))
            lines += [f'export class {cls} {{', f'  constructor(private readonly {a}: string[]) {{}}', '',
                      '  get size(): number {', f'    return this.{a}.length;', '  }', '}', '']
            continue
        f.defs.append((name, len(lines) + 1, 'function'))
        callee = r.choice(local) if local and r.random() < 0.6 else None
        lines.append(f'export function {name}({a}: string[], limit = {r.randint(1, 64)}): string[] {{')
        if callee:
            lines.append(f'  const {v} = {callee}({a});')
            f.calls.append((name, callee))
        else:
            lines.append(f'  const {v} = {a}.filter((x) => x.length > 0);')
        lines += [f'  return {v}.slice(0, limit);', '}', '']
        local.append(name)
    f.text = '\n'.join(lines)
    return f


def segment(path: str, text: str) -> str:
    return HEADER_PREFIX + path + '\n' + text + ('' if text.endswith('\n') else '\n')


def _gen_path(r, names, ext, paths) -> str:
    def make():
        d = '/'.join(r.sample(DIRS, r.randint(1, 2)))
        return f'{d}/{names.word()}_{names.word()}{ext}' if ext == '.py' else f'{d}/{names.word()}{names.word().title()}{ext}'
    return fresh(paths, make, 'path')


def _rooted_path(r, names, root, packages, paths) -> str:
    return fresh(paths, lambda: f'{root}/{r.choice(packages)}/{names.word()}_{names.word()}.py', 'path')


def repository(r, tok_len, target: int, real_files: list, words: list, style=None) -> tuple:
    """Files whose segments together stay within `target` tokens (tok_len counts a text's tokens)."""
    style = style or r.choice(['simple', 'mixed', 'mixed'])
    if words is TRAIN_WORDS and r.random() < 0.7:
        # Mostly made-up words beside the real ones: a closed set of identifiers teaches a model to
        # answer from memory (paths made of training words) instead of from the repository.
        words = r.sample(TRAIN_WORDS, 40) + [open_word(r) for _ in range(80)]
    if style == 'simple':
        # As the eval's repositories: few words, so names share words, and mostly one root with a few
        # packages, so paths share prefixes and the tokens after the prefix must come from the hop.
        words = r.sample(words, r.randint(12, 40))
        root = r.choice(DIRS) if r.random() < 0.7 else None
        packages = r.sample(DIRS + words, r.randint(3, 10))
    names, paths = Names(r, words), set()
    p_real = r.uniform(0.0, 0.8) if real_files else 0.0
    files, total, others, misses = [], 0, [], 0
    while misses < 6:
        k = r.random()
        try:
            if style == 'simple':
                path = _rooted_path(r, names, root, packages, paths) if root else _gen_path(r, names, '.py', paths)
                f = simple_module(r, names, path)
            elif k < p_real:
                src = r.choice(real_files)
                if src.path in paths:
                    misses += 1
                    continue
                paths.add(src.path)
                f = File(src.path, src.text, list(src.defs))
            elif k < p_real + (1 - p_real) / 2:
                f = python_module(r, names, _gen_path(r, names, '.py', paths), [x for x in others if x[2] == 'py'])
            else:
                f = ts_module(r, names, _gen_path(r, names, '.ts', paths), [x for x in others if x[2] == 'ts'])
        except SpaceExhausted:  # few words and a long target: the repository is as large as its words allow
            break
        n = tok_len(segment(f.path, f.text))
        if total + n > target:
            misses += 1
            continue
        files.append(f)
        total += n
        for name, _, _ in f.defs[:1]:
            stem = f.path.rsplit('/', 1)[-1].rsplit('.', 1)[0]
            others.append((stem, name, 'py' if f.path.endswith('.py') else 'ts'))
    if style != 'simple':
        r.shuffle(files)
    return files


WHERE_PREFIXES = ('In which file', 'Which file defines', 'Where is the')


def repo_questions(r, files: list, n: int, where_only=False) -> list:
    """Up to n questions whose answers are unique in the repository."""
    count = {}
    for f in files:
        for name, _, _ in f.defs:
            count[name] = count.get(name, 0) + 1
        for name, _ in f.consts:
            count[name] = count.get(name, 0) + 1
    callers = {}
    for f in files:
        for caller, callee in f.calls:
            callers.setdefault(callee, []).append(caller)
    pool = []
    for f in files:
        for name, line, kind in f.defs:
            if count[name] != 1:
                continue
            phr = r.random() if kind != 'variable' else 0.7
            if phr < 0.2:
                pool.append((f'Where is `{name}` defined? Answer with path:line.', f'{f.path}:{line}'))
            elif phr < 0.6:
                pool.append((f'In which file is the {kind} `{name}` defined? Answer with the file\'s path.', f.path))
            elif phr < 0.8:
                pool.append((f'Which file defines `{name}`?', f.path))
            else:
                pool.append((f'Where is the {kind} `{name}` defined?', f.path))
        for name, value in f.consts:
            if count[name] == 1:
                q = r.choice([f'What is the value of the constant `{name}`?', f'What is `{name}` set to?'])
                pool.append((q, value))
    for callee, cs in callers.items():
        if len(cs) == 1 and count.get(callee) == 1:
            pool.append((f'Which function calls `{callee}`?', cs[0]))
    if where_only:
        pool = [qa for qa in pool if qa[0].startswith(WHERE_PREFIXES)]
    r.shuffle(pool)
    return pool[:n]


def _uuid(r):
    h = lambda n: ''.join(r.choice('0123456789abcdef') for _ in range(n))
    return f'{h(8)}-{h(4)}-{h(4)}-{h(4)}-{h(12)}'


def _fill(r, tok_len, target, unit, needles) -> str:
    """Filler units with needles (depth, text) inserted, within target tokens (as generators.ts fill)."""
    per = max(1.0, tok_len(''.join(unit() for _ in range(8))) / 8)
    n = max(1, int((target - sum(tok_len(t) for _, t in needles)) / per))
    units = [unit() for _ in range(n)]

    def build(k):
        parts = units[:k]
        for depth, text in sorted(needles, key=lambda x: -x[0]):
            parts.insert(round(depth * k), text)
        return ''.join(parts)

    text = build(n)
    while n > 1 and tok_len(text) > target:
        n = max(1, int(n * 0.97))
        text = build(n)
    return text


def passkey(r, tok_len, target) -> Sample:
    key = str(r.randint(10000, 99999))
    needle = f'The pass key is {key}. Remember it. {key} is the pass key. '
    ctx = PASSKEY_INTRO + _fill(r, tok_len, target - tok_len(PASSKEY_INTRO), lambda: HAYSTACK, [(r.random(), needle)])
    return Sample(ctx, [('What is the pass key?', key)], kind='passkey')


def kv_retrieval(r, tok_len, target, n_questions) -> Sample:
    keys = [(_uuid(r), _uuid(r), r.random()) for _ in range(n_questions)]
    body = _fill(r, tok_len, target - tok_len('JSON data:\n{\n}\n'), lambda: f'  "{_uuid(r)}": "{_uuid(r)}",\n',
                 [(d, f'  "{k}": "{v}",\n') for k, v, d in keys])
    qas = [(f'What is the value of the key "{k}" in the JSON data above?', v) for k, v, _ in keys]
    return Sample(f'JSON data:\n{{\n{body}}}\n', qas, kind='kv-retrieval')


def variable_tracking(r, tok_len, target) -> Sample:
    up = lambda: ''.join(chr(65 + r.randint(0, 25)) for _ in range(5))
    hops = 4
    names = [up() for _ in range(hops + 1)]
    value = str(r.randint(10000, 99999))
    depth = r.random() * 0.8
    needles = [(depth + (1 - depth) * i / (hops + 1), f'VAR {n} = {value if i == 0 else "VAR " + names[i - 1]}. ')
               for i, n in enumerate(names)]
    other = [up() for _ in range(3)]
    needles += [((i + 0.5) / 3, f'VAR {n} = {str(r.randint(10000, 99999)) if i == 0 else "VAR " + other[i - 1]}. ')
                for i, n in enumerate(other)]
    ctx = _fill(r, tok_len, target, lambda: HAYSTACK, needles)
    return Sample(ctx, [(f'What is the value of VAR {names[hops]}?', value)], kind='variable-tracking')


def repo_sample(r, tok_len, target, real_files, words, n_questions, style=None, where_only=False) -> Sample:
    files = repository(r, tok_len, target, real_files, words, style)
    qas = repo_questions(r, files, n_questions, where_only=where_only)
    segs = [segment(f.path, f.text) for f in files]
    return Sample(''.join(segs), qas, segs, kind='repository')


MIX = [('repository', 0.55), ('kv-retrieval', 0.2), ('passkey', 0.1), ('variable-tracking', 0.15)]

_real_words = {}


def real_words(real_files: list, held_out: bool = False) -> list:
    """Words of 4-8 letters from the real files' identifiers, none of the eval's, held-out or training
    words. The tokenizer splits many of them into common fragments, as it splits the eval's words,
    where each training word is one token. A fixed fifth of them (by CRC-32, the same in every
    process) is kept for evaluation (held_out=True) and never names code in training."""
    key = (id(real_files), held_out)
    if key not in _real_words:
        found = set()
        for f in real_files:
            for name, _, _ in f.defs:
                found.update(w.lower() for w in re.findall(r'[A-Z]?[a-z]+', name) if 4 <= len(w) <= 8)
        words = sorted(found - set(EVAL_WORDS) - set(HELDOUT_WORDS) - set(TRAIN_WORDS))
        _real_words[key] = [w for w in words if (zlib.crc32(w.encode()) % 5 == 0) == held_out]
    return _real_words[key]


def training_sample(r, tok_len, target, real_files) -> Sample:
    while True:
        s = _training_sample(r, tok_len, target, real_files)
        if s.qas:
            return s


def _training_sample(r, tok_len, target, real_files) -> Sample:
    x, acc = r.random(), 0.0
    for kind, p in MIX:
        acc += p
        if x < acc:
            break
    reserve = 200  # question + answer tokens
    if kind == 'repository':
        return repo_sample(r, tok_len, target - reserve, real_files, TRAIN_WORDS, r.randint(1, 3))
    if kind == 'where':
        # Where-defined drill: mostly the eval's repository style, many questions per context, so
        # the two hops (name -> definition -> the FILE header above it) get dense answer signal.
        # Questions grow with the context (up to one per 512 tokens), so long contexts, where the
        # skill fades, get as many answers per token as short ones.
        style = r.choice(['simple', 'simple', 'mixed'])
        n = r.randint(2, max(8, target // 512))
        return repo_sample(r, tok_len, target - 40 * n, real_files, TRAIN_WORDS, n, style, where_only=True)
    if kind == 'where-real-words':
        # The drill in the eval's repository style with names made of words from real code, so
        # the names split into tokens as the eval's do (the training words are one token each).
        n = r.randint(2, max(8, target // 512))
        return repo_sample(r, tok_len, target - 40 * n, [], r.sample(real_words(real_files), 40), n, 'simple', where_only=True)
    if kind == 'kv-retrieval':
        return kv_retrieval(r, tok_len, target - reserve, r.randint(1, 3))
    if kind == 'passkey':
        return passkey(r, tok_len, target - reserve)
    return variable_tracking(r, tok_len, target - reserve)


# ---- encoding --------------------------------------------------------------------------------
BOS, EOS, PAD = '<s>', '</s>', '<pad>'
NO_LOSS, CONTEXT, ANSWER = 0, 1, 2


def encode(tok, s: Sample, ask_form: bool) -> tuple:
    """ids and per-token classes (NO_LOSS, CONTEXT, ANSWER) of the sample in one prompt form."""
    enc = lambda text: tok.encode(text, add_special_tokens=False).ids
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    ids, cls = [bos], [NO_LOSS]

    def put(xs, c):
        ids.extend(xs)
        cls.extend([c] * len(xs))

    first_q, first_a = s.qas[0]
    if ask_form and s.segments is not None:
        put(enc(SYSTEM + '\n\n'), CONTEXT)
        for seg in s.segments:
            put(enc(seg), CONTEXT)
        put(enc(f'\nQuestion: {first_q}\nAnswer:'), CONTEXT)
    else:
        put(enc(f'{s.context}\n\nQuestion: {first_q}\nAnswer:'), CONTEXT)
    put(enc(' ' + first_a) + [eos], ANSWER)
    for q, a in s.qas[1:]:
        put(enc(f'\nQuestion: {q}\nAnswer:'), CONTEXT)
        put(enc(' ' + a) + [eos], ANSWER)
    return ids, cls
