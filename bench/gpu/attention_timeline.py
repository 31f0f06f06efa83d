"""Where the PrHS operator's step goes: its kernels on a CUPTI timeline (bench/gpu/timeline.cc).

  python3 bench/gpu/attention_timeline.py run LIB T         # 16 sparse calls a CUDA graph, over 4 input copies
  CUDA_INJECTION64_PATH=libtimeline.so REPO_LENS_TIMELINE=t.csv python3 bench/gpu/attention_timeline.py run LIB T
  python3 bench/gpu/attention_timeline.py parse t.csv       # medians per call, kernel by kernel

For each kernel the median of: its duration, its start after the previous kernel's end (negative:
launched early, programmatic launch) and its end after the previous kernel's end (its share of the
critical path). The Llama-3-8B layer shape at a 5 % budget, as attention.py times it.
"""
import collections
import math
import os
import statistics
import sys

KERNELS = ('score', 'keys', 'choose', 'partial', 'combine')


def run(lib_path, T, copies=4):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch
    import attention as A
    lib = A.Lib(lib_path)
    gen = torch.Generator(device='cuda')
    gen.manual_seed(1)
    x = A.ContextInputs(T, gen, copies=copies, keep_dense=False)
    for c in x.caches:
        lib.summaries(c)
    budget = math.ceil(0.05 * x.nb)
    selected = torch.empty(x.n_kv, budget, device='cuda', dtype=torch.int32)
    log2u, lse, delta = (torch.empty(x.H, device='cuda') for _ in range(3))
    out = torch.empty(x.H, x.D, device='cuda')
    sel_ws, ws = lib.select_workspace(x.n_kv, x.H // x.n_kv, x.nb), lib.attention_workspace(x.H, x.D)
    calls = [lambda i=i: lib.sparse(x.qs[i], x.caches[i], budget, 1, 2, selected, log2u, sel_ws, out, lse, delta, ws)
             for i in range(copies)] * 4
    print(A.time_graph(calls, reps=10))


def parse(csv_path):
    kernels = []
    for line in open(csv_path):
        kind, start, end, _, name = line.rstrip('\n').split(',', 4)
        short = next((k for k in KERNELS if kind == 'kernel' and k in name), None)
        if short:
            kernels.append((int(start), int(end), short))
    kernels.sort()
    calls, call = [], []
    for k in kernels:
        if k[2] == 'score' and call:
            calls.append(call)
            call = []
        call.append(k)
    calls = calls[len(calls) // 2:]  # the replays
    names = collections.Counter(tuple(k[2] for k in c) for c in calls).most_common(1)[0][0]  # a whole call's
    calls = [c for c in calls if tuple(k[2] for k in c) == names]
    med = lambda xs: statistics.median(xs) / 1e3
    pairs = list(zip(calls[1:], calls))  # (call, the call before it)
    print(f'{len(pairs)} calls')
    for j, name in enumerate(names):
        prev_end = lambda c, p: c[j - 1][1] if j else p[-1][1]
        print(f'{name:8s} duration {med([c[j][1] - c[j][0] for c, _ in pairs]):6.2f} us'
              f'  start - previous end {med([c[j][0] - prev_end(c, p) for c, p in pairs]):6.2f}'
              f'  end - previous end {med([c[j][1] - prev_end(c, p) for c, p in pairs]):6.2f}')
    print(f'call, end to end {med([c[-1][1] - p[-1][1] for c, p in pairs]):.2f} us')


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'run':
        run(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == 'parse':
        parse(sys.argv[2])
    else:
        sys.exit(__doc__)
