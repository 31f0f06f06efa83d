"""Packs JavaScript/TypeScript from the project's node_modules into .train-data/js.jsonl.gz, the
JS/TS part of the training corpus (the training machine has no npm). Minified files (a line over 300
characters, or over 90 characters a line on average), duplicates and files over 120 KB are left out.

    python3 tools/train/make_js_corpus.py --out .train-data/js.jsonl.gz
"""
import argparse
import gzip
import hashlib
import json
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', default='node_modules')
    ap.add_argument('--out', default='.train-data/js.jsonl.gz')
    ap.add_argument('--max-chars', type=int, default=40_000_000)
    args = ap.parse_args()
    files = []
    for dp, _, fn in os.walk(args.root):
        files += [os.path.join(dp, f) for f in fn
                  if f.endswith(('.ts', '.js', '.mjs', '.cjs', '.tsx')) and not f.endswith('.min.js')]
    files.sort()
    random.Random(0).shuffle(files)
    seen, total, kept = set(), 0, []
    for p in files:
        try:
            if not 300 <= os.path.getsize(p) <= 120_000:
                continue
            text = open(p, encoding='utf-8').read()
        except (OSError, UnicodeDecodeError):
            continue
        lines = text.split('\n')
        if max(len(l) for l in lines) > 300 or len(text) / len(lines) > 90:
            continue
        digest = hashlib.sha1(text.encode()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        kept.append({'path': os.path.relpath(p, args.root), 'text': text})
        total += len(text)
        if total > args.max_chars:
            break
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    with gzip.open(args.out, 'wt') as f:
        for o in kept:
            f.write(json.dumps(o) + '\n')
    print(f'{len(kept)} files, {total} characters -> {args.out}')


if __name__ == '__main__':
    main()
