#!/usr/bin/env python3
"""Where the GPU idles in decode steps, from a bench/gpu/timeline.cc CSV (kernels, copies, runtime calls).

  python3 bench/gpu/timeline.py TIMELINE.csv [--last N] [--show K]
  python3 bench/gpu/timeline.py TIMELINE.csv --totals [--show K]

A decode step runs from one embedding kernel to the next. For the last N steps: each step's wall
time and the share of it the device spent on kernels or copies (their union over all streams);
then the idle gaps between device operations summed by the pair of operations around them (the
largest first), and for the step of median length every operation with the gap before it and the
runtime calls the host was in during that gap (K lines at most).

--totals is for work that is not decode steps (a prefill): over the whole file, the device-busy share,
then device time summed by operation name and host time by runtime call (K lines each at most).
"""
import argparse
import collections
import csv
import re


def short(name, width=48):
    # _ZN2rl4cuda53_GLOBAL__N__<hash>_20_prefill_attention_cu_<hash>12attn_kernel...: the kernel's own name
    m = re.search(r'_cu_[0-9a-f]{8}(\d+)', name)
    if m:
        return name[m.end():m.end() + int(m.group(1))][:width]
    name = name.split('(')[0]
    for prefix in ('void ', 'rl::cuda::', '(anonymous namespace)::'):
        name = name.replace(prefix, '')
    return name[:width]


def union_busy(ops, t0, t1):
    """ns in [t0, t1) during which at least one of the (sorted) operations ran."""
    busy, cursor = 0, t0
    for start, end, *_ in ops:
        start, end = max(start, cursor), min(end, t1)
        if end > start:
            busy += end - start
            cursor = end
    return busy


def gaps_by_pair(ops, t0, pair_gap, pair_count):
    """Adds each idle gap among the (sorted) operations after t0 to the pair of operations around it."""
    last_end, last_name = t0, 'start'
    for start, end, kind, stream, name in ops:
        if start > last_end:
            key = (last_name, short(name))
            pair_gap[key] += start - last_end
            pair_count[key] += 1
        if end > last_end:
            last_end, last_name = end, short(name)


def print_totals(ops, api, show):
    """The prefill after forward_check --time's warm-up: from the second embedding kernel to the last."""
    embeds = [i for i, op in enumerate(ops) if op[2] == 'kernel' and 'embed' in op[4]]
    a, b = (embeds[1], embeds[-1]) if len(embeds) >= 3 else (0, len(ops))
    ops, t0, t1 = ops[a:b], ops[a][0], ops[b - 1][1]
    api = [c for c in api if t0 <= c[0] < t1]
    print(f'{(t1 - t0) / 1e6:.1f} ms from the second embedding kernel to the last, device busy {union_busy(ops, t0, t1) / (t1 - t0):.1%}')
    for title, rows in (('device time by operation', ops), ('host time by runtime call', api)):
        total, count = collections.Counter(), collections.Counter()
        for start, end, kind, _, name in rows:
            key = short(name, 60) if kind != 'memcpy' else name.split(' ')[0]
            total[key] += end - start
            count[key] += 1
        whole = sum(total.values()) or 1
        print(f'\n{title} (ms, share, count, us each):')
        for key, ns in total.most_common(show):
            print(f'{ns / 1e6:10.2f} {ns / whole:6.1%} {count[key]:7d} {ns / 1e3 / count[key]:9.1f}  {key}')
    pair_gap, pair_count = collections.Counter(), collections.Counter()
    gaps_by_pair(ops, t0, pair_gap, pair_count)
    print('\nidle gaps by the operations around them (ms, count):')
    for (before, after), gap in pair_gap.most_common(show):
        print(f'{gap / 1e6:9.2f} {pair_count[(before, after)]:5d}  {before} -> {after}')
    # The launching thread: the one that launched the most kernels.
    launches = collections.Counter(c[3] for c in api if 'Launch' in c[4])
    main_thread = launches.most_common(1)[0][0] if launches else None
    gaps, last_end = [], t0
    for start, end, kind, stream, name in ops:
        if start > last_end:
            gaps.append((start - last_end, last_end, start, short(name)))
        last_end = max(last_end, end)
    print(f'\nthe longest idle gaps, with the launching thread\'s runtime calls in them (us each):')
    for gap, a_, b_, after in sorted(gaps, reverse=True)[:8]:
        calls = [f'{c[4].split("_v")[0].replace("cuda", "")}:{(min(c[1], b_) - max(c[0], a_)) / 1e3:.0f}'
                 for c in api if c[3] == main_thread and c[1] > a_ and c[0] < b_]
        print(f'{gap / 1e3:9.0f} at {(a_ - t0) / 1e6:8.1f} ms, before {after}: {" ".join(calls[:10])}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('csv')
    ap.add_argument('--last', type=int, default=6)
    ap.add_argument('--show', type=int, default=400)
    ap.add_argument('--totals', action='store_true')
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
    if args.totals:
        return print_totals(ops, api, min(args.show, 40))
    starts = [i for i, op in enumerate(ops) if op[2] == 'kernel' and 'embed' in op[4]]
    if len(starts) < 2:
        raise SystemExit('fewer than two embedding kernels: no whole step in the file')
    steps = list(zip(starts[:-1], starts[1:]))[-args.last:]
    pair_gap = collections.Counter()
    pair_count = collections.Counter()
    lengths = []
    for a, b in steps:
        t0, t1 = ops[a][0], ops[b][0]
        busy = union_busy(ops[a:b], t0, t1)
        lengths.append((t1 - t0, a, b))
        print(f'step {len(lengths)}: {(t1 - t0) / 1e3:8.1f} us, device busy {busy / (t1 - t0):5.1%}, {b - a} operations')
        gaps_by_pair(ops[a:b], t0, pair_gap, pair_count)
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
