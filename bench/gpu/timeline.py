#!/usr/bin/env python3
"""Where the GPU idles in decode steps, from a bench/gpu/timeline.cc CSV (kernels, copies, runtime calls).

  python3 bench/gpu/timeline.py TIMELINE.csv [--last N] [--show K]

A decode step runs from one embedding kernel to the next. For the last N steps: each step's wall
time and the share of it the device spent on kernels or copies (their union over all streams);
then the idle gaps between device operations summed by the pair of operations around them (the
largest first), and for the step of median length every operation with the gap before it and the
runtime calls the host was in during that gap (K lines at most).
"""
import argparse
import collections
import csv


def short(name, width=48):
    name = name.split('(')[0]
    for prefix in ('void ', 'rl::cuda::', '(anonymous namespace)::'):
        name = name.replace(prefix, '')
    return name[:width]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('csv')
    ap.add_argument('--last', type=int, default=6)
    ap.add_argument('--show', type=int, default=400)
    args = ap.parse_args()
    ops, api = [], []
    with open(args.csv) as f:
        for row in csv.reader(f):
            if len(row) < 5:
                continue
            kind, start, end, stream, name = row[0], int(row[1]), int(row[2]), row[3], ','.join(row[4:])
            (api if kind == 'api' else ops).append((start, end, kind, stream, name))
    ops.sort()
    api.sort()
    starts = [i for i, op in enumerate(ops) if op[2] == 'kernel' and 'embed' in op[4]]
    if len(starts) < 2:
        raise SystemExit('fewer than two embedding kernels: no whole step in the file')
    steps = list(zip(starts[:-1], starts[1:]))[-args.last:]
    pair_gap = collections.Counter()
    pair_count = collections.Counter()
    lengths = []
    for a, b in steps:
        t0, t1 = ops[a][0], ops[b][0]
        busy, cursor = 0, t0
        for start, end, *_ in ops[a:b]:
            start, end = max(start, cursor), min(end, t1)
            if end > start:
                busy += end - start
                cursor = end
        lengths.append((t1 - t0, a, b))
        print(f'step {len(lengths)}: {(t1 - t0) / 1e3:8.1f} us, device busy {busy / (t1 - t0):5.1%}, {b - a} operations')
        last_end, last_name = t0, 'step start'
        for start, end, kind, stream, name in ops[a:b]:
            if start > last_end:
                key = (last_name, short(name))
                pair_gap[key] += start - last_end
                pair_count[key] += 1
            if end > last_end:
                last_end, last_name = end, short(name)
    print('\nidle gaps by the operations around them (us over these steps, count):')
    for (before, after), gap in pair_gap.most_common(20):
        print(f'{gap / 1e3:9.1f} {pair_count[(before, after)]:5d}  {before} -> {after}')
    lengths.sort()
    _, a, b = lengths[len(lengths) // 2]
    t0 = ops[a][0]
    print(f'\nthe median step, operation by operation (us from its start; gap before; duration; stream; host calls in the gap):')
    last_end = t0
    j = 0
    for start, end, kind, stream, name in ops[a:b][:args.show]:
        gap = start - last_end
        calls = []
        if gap > 1000:
            while j < len(api) and api[j][1] < last_end:
                j += 1
            k = j
            while k < len(api) and api[k][0] < start:
                calls.append(f'{api[k][4].replace("cuda", "")}:{(api[k][1] - api[k][0]) / 1e3:.0f}')
                k += 1
        print(f'{(start - t0) / 1e3:8.1f} {gap / 1e3:7.1f} {(end - start) / 1e3:7.1f} s{stream:>3} {short(name, 40):40s} {" ".join(calls[:8])}')
        last_end = max(last_end, end)


if __name__ == '__main__':
    main()
