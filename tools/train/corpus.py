"""Real source code for training: Python from the interpreter's standard library and site-packages
(PyTorch, transformers, ...) on the training machine, and JavaScript/TypeScript carried over from npm
packages (`.train-data/js.jsonl.gz`, made by `make_js_corpus.py`).

Each file is kept with a plausible repository path and the names it defines (for where-defined
questions), found by a line regex: `def name(` / `class Name` in Python, `function name(` /
`class Name` / `const name =` at the top level in JS/TS.
"""
import gzip
import json
import os
import random
import re
import sysconfig
from dataclasses import dataclass

MAX_FILE_CHARS = 12_000   # longer files are cut at a line boundary (a few thousand tokens at most)
MIN_FILE_CHARS = 200

PY_DEF = re.compile(r'^[ \t]*(?:async[ \t]+)?(def|class)[ \t]+([A-Za-z_][A-Za-z0-9_]{3,})', re.M)
JS_DEF = re.compile(r'^(?:export[ \t]+)?(?:default[ \t]+)?(?:async[ \t]+)?(function\*?|class|const|let)[ \t]+([A-Za-z_$][A-Za-z0-9_$]{3,})', re.M)


@dataclass
class SourceFile:
    path: str
    text: str
    # (name, line, 'function' | 'class' | 'variable') of each definition; lines count from 1 like the context builder's.
    defs: list


def _defs(text: str, pattern: re.Pattern) -> list:
    out = []
    for m in pattern.finditer(text):
        kind = {'class': 'class', 'const': 'variable', 'let': 'variable'}.get(m.group(1), 'function')
        out.append((m.group(2), text.count('\n', 0, m.start()) + 1, kind))
    return out


def _cut(text: str) -> str:
    if len(text) <= MAX_FILE_CHARS:
        return text
    return text[: text.rfind('\n', 0, MAX_FILE_CHARS) + 1]


def _usable(text: str) -> bool:
    if len(text) < MIN_FILE_CHARS or '\x00' in text:
        return False
    lines = text.split('\n')
    return max(len(l) for l in lines) <= 300 and len(text) / len(lines) <= 90


def python_files(limit_chars: int, seed: int) -> list:
    roots = {sysconfig.get_paths()['stdlib'], sysconfig.get_paths()['purelib']}
    paths = []
    for root in sorted(roots):
        for dp, dn, fn in os.walk(root):
            dn[:] = sorted(d for d in dn if d not in ('test', 'tests', '__pycache__'))
            paths += [os.path.join(dp, f) for f in sorted(fn) if f.endswith('.py')]
    random.Random(seed).shuffle(paths)
    out, total = [], 0
    for p in paths:
        try:
            text = open(p, encoding='utf-8').read()
        except (OSError, UnicodeDecodeError):
            continue
        if not _usable(text):
            continue
        text = _cut(text)
        rel = os.path.relpath(p, os.path.dirname(p.split('/site-packages/')[0]) if '/site-packages/' in p else os.path.dirname(os.path.dirname(p)))
        rel = rel.split('site-packages/', 1)[-1]
        out.append(SourceFile(rel, text, _defs(text, PY_DEF)))
        total += len(text)
        if total >= limit_chars:
            break
    return out


def js_files(path: str, limit_chars: int) -> list:
    out, total = [], 0
    if not os.path.exists(path):
        return out
    with gzip.open(path, 'rt') as f:
        for line in f:
            o = json.loads(line)
            text = o['text']
            if not _usable(text):
                continue
            text = _cut(text)
            out.append(SourceFile(o['path'], text, _defs(text, JS_DEF)))
            total += len(text)
            if total >= limit_chars:
                break
    return out


def load(js_path: str, python_chars: int, js_chars: int, seed: int) -> list:
    files = python_files(python_chars, seed) + js_files(js_path, js_chars)
    random.Random(seed).shuffle(files)
    return files
