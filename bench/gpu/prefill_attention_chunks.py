#!/usr/bin/env python3
"""The prefill attention kernel's time and TFLOP/s by prefill chunk, from a bench/gpu/timeline.cc CSV of one prefill.

  python3 bench/gpu/prefill_attention_chunks.py TIMELINE.csv CONTEXT [--layers 28 --heads 12 --head-dim 128 --chunk 2048]

The last CONTEXT / chunk x layers launches of prefill_attention_kernel are the prefill's (a warm-up's come first); chunk c
holds queries [c chunk, (c + 1) chunk) against keys [0, (c + 1) chunk), causal: 4 heads head_dim (chunk^2 c + chunk^2 / 2)
FLOPs a layer (q.k and p.v). Defaults: the Qwen2.5-Coder-1.5B shape that bench/gpu/random_model.py writes.
"""
import argparse
import csv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('csv')
    ap.add_argument('context', type=int)
    ap.add_argument('--layers', type=int, default=28)
    ap.add_argument('--heads', type=int, default=12)
    ap.add_argument('--head-dim', type=int, default=128)
    ap.add_argument('--chunk', type=int, default=2048)
    args = ap.parse_args()
    with open(args.csv) as f:
        launches = sorted((int(r[1]), int(r[2])) for r in csv.reader(f)
                          if len(r) >= 5 and r[0] == 'kernel' and 'prefill_attention_kernel' in ','.join(r[4:]))
    chunks, layers, n = args.context // args.chunk, args.layers, args.chunk
    launches = launches[-chunks * layers:]
    if len(launches) < chunks * layers:
        raise SystemExit(f'{len(launches)} launches of prefill_attention_kernel, expected {chunks * layers}')
    total_ns = 0
    for c in range(chunks):
        ns = [end - start for start, end in launches[c * layers:(c + 1) * layers]]
        flops = 4 * args.heads * args.head_dim * (n * n * c + n * n / 2)
        mean = sum(ns) / len(ns)
        total_ns += sum(ns)
        if c < 4 or c % max(1, chunks // 8) == 0 or c == chunks - 1:
            print(f'chunk {c:3d}: {mean / 1e3:8.1f} us a layer, {flops / mean / 1e3:6.1f} TFLOP/s')
    flops = 4 * args.heads * args.head_dim * args.context * args.context / 2 * layers
    print(f'all: {total_ns / 1e6:8.1f} ms, {flops / total_ns / 1e3:6.1f} TFLOP/s')


if __name__ == '__main__':
    main()
