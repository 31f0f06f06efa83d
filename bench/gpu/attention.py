#!/usr/bin/env python3
"""Decode attention on the GPU: correctness of native/cuda's kernels, then speed beside PyTorch.

Needs a CUDA GPU, nvcc and PyTorch. Usage (from the repository root):
  python3 bench/gpu/attention.py [--lib build.so ...] [--contexts 8192,32768,131072] [--out results.json]
1. Builds bench/gpu/capi.cu with native/cuda's ops into a shared library (unless --lib is given).
2. Checks, on fresh random inputs with poisoned outputs, dense and PrHS attention, the block
   summaries and the selection against float64 references (PyTorch on the GPU, upcast).
3. Times, at the Llama-3-8B layer shape (32 query heads, 8 KV heads, head dim 128, fp16), dense
   and PrHS (5% of blocks, selection and certificate included; the selection alone too) beside
   torch.nn.functional.scaled_dot_product_attention(..., enable_gqa=True), each as the median
   over CUDA-graph replays rotating over input copies that together exceed the L2 cache; and the
   floor of each: bytes it must read / measured device copy bandwidth.
Prints a table last; writes every number to --out.
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLOCK = 32
# The ops (not the backend's files: the Backend wiring and its sparse decode side need the model, KV
# cache and prhs C++ sources).
BACKEND_SOURCES = {'backend_cuda.cu', 'block_attention_cuda.cu', 'kv_writer.cu', 'policy_timing.cu'}
CUDA_SOURCES = sorted('native/cuda/' + f for f in os.listdir(os.path.join(ROOT, 'native', 'cuda'))
                      if f.endswith('.cu') and f not in BACKEND_SOURCES) + ['bench/gpu/capi.cu']


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------------------------------------
# The library

def build_library(path):
    """nvcc build of the ops + C API for this machine's GPU; reused while newer than every source."""
    sources = [os.path.join(ROOT, f) for f in CUDA_SOURCES]
    headers = [os.path.join(ROOT, 'native', 'cuda', f) for f in os.listdir(os.path.join(ROOT, 'native', 'cuda'))]
    if os.path.exists(path) and os.path.getmtime(path) > max(os.path.getmtime(f) for f in sources + headers):
        return path
    major, minor = torch.cuda.get_device_capability(0)
    arch = f'{major}{minor}' + ('a' if (major, minor) == (9, 0) else '')  # 90a: with wgmma (native/cuda/wgmma.cuh)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cmd = ['nvcc', '-std=c++17', '-O3', '-shared', '-Xcompiler', '-fPIC', f'-gencode=arch=compute_{arch},code=sm_{arch}',
           '-Inative/cuda', *CUDA_SOURCES, '-o', path]
    log('building: ' + ' '.join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)
    return path


class Lib:
    def __init__(self, path):
        self.path = path
        self.so = ctypes.CDLL(path)
        self.so.rl_last_error.restype = ctypes.c_char_p
        self.so.rl_attention_workspace_floats.restype = ctypes.c_size_t
        self.so.rl_select_workspace_floats.restype = ctypes.c_size_t

    def _call(self, name, *args):
        conv = []
        for a in args:
            if isinstance(a, torch.Tensor):
                conv.append(ctypes.c_void_p(a.data_ptr()))
            elif isinstance(a, float):
                conv.append(ctypes.c_float(a))
            elif a is None:
                conv.append(ctypes.c_void_p(0))
            else:
                conv.append(ctypes.c_int(a))
        conv.append(ctypes.c_void_p(torch.cuda.current_stream().cuda_stream))
        if getattr(self.so, name)(*conv) != 0:
            raise RuntimeError(f'{name}: {self.so.rl_last_error().decode()}')

    def attention_workspace(self, n_heads, head_dim):
        return torch.zeros(self.so.rl_attention_workspace_floats(n_heads, head_dim), device='cuda')  # its counts start at zero

    def select_workspace(self, n_kv, group, n_logical):
        return torch.empty(self.so.rl_select_workspace_floats(n_kv, group, n_logical), device='cuda')

    def dense(self, q, cache, out, lse, ws):
        self._call('rl_dense_attention', q, cache.k, cache.v, cache.table, cache.length, q.shape[0], cache.n_kv,
                   cache.head_dim, BLOCK, 1.0 / math.sqrt(cache.head_dim), out, lse, ws)

    def summaries(self, cache):
        self._call('rl_block_summaries', cache.k, cache.table, cache.length, cache.n_kv, cache.head_dim, BLOCK,
                   cache.kmin, cache.kmax)

    def select(self, q, cache, budget, sink, recent, selected, log2u, sel_ws):
        self._call('rl_block_select', q, cache.kmin, cache.kmax, cache.table, cache.length, q.shape[0], cache.n_kv,
                   cache.head_dim, BLOCK, 1.0 / math.sqrt(cache.head_dim), budget, sink, recent, selected, log2u,
                   sel_ws)

    def sparse(self, q, cache, budget, sink, recent, selected, log2u, sel_ws, out, lse, delta, ws):
        self._call('rl_sparse_attention', q, cache.k, cache.v, cache.kmin, cache.kmax, cache.table, cache.length,
                   q.shape[0], cache.n_kv, cache.head_dim, BLOCK, 1.0 / math.sqrt(cache.head_dim), budget, sink,
                   recent, selected, log2u, sel_ws, out, lse, delta, ws)


class PagedCache:
    """One layer's KV for one sequence: dense [n_kv][T][D] fp16 tensors (PyTorch's view) and the
    same data in the paged layout [phys][n_kv][BLOCK][D] with a shuffled block table."""

    def __init__(self, n_kv, length, head_dim, gen, planted=0, q_dirs=None, keep_dense=True, ties=False):
        self.n_kv, self.length, self.head_dim = n_kv, length, head_dim
        nb = (length + BLOCK - 1) // BLOCK
        self.n_logical = nb
        k = torch.randn(n_kv, nb * BLOCK, head_dim, device='cuda', generator=gen, dtype=torch.float16)
        v = torch.randn(n_kv, nb * BLOCK, head_dim, device='cuda', generator=gen, dtype=torch.float16)
        if planted:  # a few blocks per KV head whose keys lean towards the queries (structure to find)
            for h in range(n_kv):
                blocks = torch.randperm(nb, device='cuda', generator=gen)[:planted]
                for b in blocks.tolist():
                    k[h, b * BLOCK:(b + 1) * BLOCK] += (q_dirs[h] * 3.0).to(torch.float16)
        if ties:  # every block holds block 0's keys: the keys tie (all but a partial tail's)
            k.view(n_kv, nb, BLOCK, head_dim)[:] = k[:, :BLOCK].unsqueeze(1).clone()
        # Stale garbage (NaN) past the sequence's end: the kernels must never read it into results.
        k[:, length:] = float('nan')
        v[:, length:] = float('nan')
        perm = torch.randperm(nb, device='cuda', generator=gen)
        self.table = perm.to(torch.int32)
        paged_k = torch.empty(nb, n_kv, BLOCK, head_dim, device='cuda', dtype=torch.float16)
        paged_v = torch.empty_like(paged_k)
        paged_k[perm] = k.view(n_kv, nb, BLOCK, head_dim).permute(1, 0, 2, 3)
        paged_v[perm] = v.view(n_kv, nb, BLOCK, head_dim).permute(1, 0, 2, 3)
        self.k, self.v = paged_k, paged_v
        self.kmin = torch.empty(nb, n_kv, head_dim, device='cuda', dtype=torch.float16)
        self.kmax = torch.empty_like(self.kmin)
        if keep_dense:
            self.dense_k = k[:, :length].unsqueeze(0)  # [1][n_kv][T][D] (a view; the NaN tail excluded)
            self.dense_v = v[:, :length].unsqueeze(0)
        else:
            self.dense_k = self.dense_v = None
            del k, v


def rel_err(x, ref):
    x = x.double()
    if not torch.isfinite(x).all():
        return float('inf')
    return ((x - ref).norm() / ref.norm()).item()


# ---------------------------------------------------------------------------------------------
# Correctness

def reference_scores(q, cache):
    """float64 scores [H][T] (scaled), for query head h against KV head h // group."""
    H, D = q.shape
    group = H // cache.n_kv
    k = cache.dense_k[0].double().repeat_interleave(group, dim=0)  # [H][T][D]
    return torch.einsum('hd,htd->ht', q.double(), k) / math.sqrt(D)


def check_case(lib, gen, H, n_kv, D, T, budget_frac, planted, results, ties=False):
    group = H // n_kv
    q = torch.randn(H, D, device='cuda', generator=gen)
    q_dirs = q.view(n_kv, group, D).mean(1) / q.view(n_kv, group, D).mean(1).norm(dim=1, keepdim=True) * math.sqrt(D)
    cache = PagedCache(n_kv, T, D, gen, planted=planted, q_dirs=q_dirs, ties=ties)
    name = f'H{H} KV{n_kv} D{D} T{T}' + (f' planted{planted}' if planted else '') + (' ties' if ties else '')
    scores = reference_scores(q, cache)  # [H][T]
    probs = torch.softmax(scores, dim=1)
    v_rep = cache.dense_v[0].double().repeat_interleave(group, dim=0)
    ref_out = torch.einsum('ht,htd->hd', probs, v_rep)
    ref_lse = torch.logsumexp(scores, dim=1)
    ok = True

    # dense
    out = torch.full((H, D), float('nan'), device='cuda')
    lse = torch.full((H,), float('nan'), device='cuda')
    ws = lib.attention_workspace(H, D)
    lib.dense(q, cache, out, lse, ws)
    torch.cuda.synchronize()
    e_out, e_lse = rel_err(out, ref_out), (lse.double() - ref_lse).abs().max().item()
    ok_dense = e_out < 1e-5 and e_lse < 1e-4
    ok &= ok_dense
    log(f'  dense   {name}: rel err {e_out:.2e}, lse abs err {e_lse:.2e} {"ok" if ok_dense else "FAIL"}')

    # block summaries
    nb = cache.n_logical
    cache.kmin.fill_(float('nan'))
    cache.kmax.fill_(float('nan'))
    lib.summaries(cache)
    torch.cuda.synchronize()
    kpad = torch.cat([cache.dense_k[0], torch.full((n_kv, nb * BLOCK - T, D), float('nan'), device='cuda',
                                                   dtype=torch.float16)], 1).view(n_kv, nb, BLOCK, D).float()
    ref_min = torch.where(torch.isnan(kpad), torch.inf, kpad).amin(2)  # [n_kv][nb][D]
    ref_max = torch.where(torch.isnan(kpad), -torch.inf, kpad).amax(2)
    got_min = cache.kmin[cache.table.long()].permute(1, 0, 2).float()
    got_max = cache.kmax[cache.table.long()].permute(1, 0, 2).float()
    ok_sum = torch.equal(got_min, ref_min) and torch.equal(got_max, ref_max)
    ok &= ok_sum
    log(f'  summary {name}: {"exact" if ok_sum else "FAIL"}')

    # sparse
    budget = max(3, math.ceil(budget_frac * nb))
    sink, recent = 1, 2
    selected = torch.full((n_kv, budget), -7, device='cuda', dtype=torch.int32)
    log2u = torch.full((H,), float('nan'), device='cuda')
    sel_ws = lib.select_workspace(n_kv, group, nb)
    out.fill_(float('nan'))
    lse.fill_(float('nan'))
    delta = torch.full((H,), float('nan'), device='cuda')
    lib.sparse(q, cache, budget, sink, recent, selected, log2u, sel_ws, out, lse, delta, ws)
    torch.cuda.synchronize()
    k_used = min(budget, nb)
    sel = selected[:, :k_used].long()
    # the upper bounds in float64, from the (verified) summaries
    qs = q.double().view(n_kv, group, 1, D) / math.sqrt(D)
    ub = torch.maximum(qs * ref_min.double().unsqueeze(1), qs * ref_max.double().unsqueeze(1)).sum(-1)  # [n_kv][g][nb]
    block_max = scores.view(n_kv, group, -1)
    block_max = torch.cat([block_max, torch.full((n_kv, group, nb * BLOCK - T), -torch.inf, device='cuda',
                                                 dtype=torch.float64)], 2).view(n_kv, group, nb, BLOCK).amax(3)
    ok_bound = bool((ub >= block_max - 1e-9).all())
    # ranking key as the CPU selection (prhs/selection.h): sum over the group of each head's share
    # fill * e^ub / sum over all blocks
    fill = torch.full((nb,), BLOCK, dtype=torch.float64, device='cuda')
    fill[-1] = T - (nb - 1) * BLOCK
    log_mass = ub + torch.log(fill)  # [n_kv][g][nb]
    key = torch.exp(log_mass - torch.logsumexp(log_mass, dim=2, keepdim=True)).sum(1)  # [n_kv][nb]
    key[:, :sink] = torch.inf
    key[:, nb - recent:] = torch.inf
    ok_sel = bool((sel[:, 1:] > sel[:, :-1]).all()) and bool(((sel >= 0) & (sel < nb)).all())
    chosen = torch.zeros(n_kv, nb, dtype=torch.bool, device='cuda')
    chosen.scatter_(1, sel, True)
    if k_used < nb:
        worst_in = torch.where(chosen, key, torch.inf).amin(1)
        best_out = torch.where(chosen, -torch.inf, key).amax(1)
        ok_sel &= bool((worst_in >= best_out * (1 - 1e-4) - 1e-12).all())
    ok_sel &= bool(chosen[:, :sink].all()) and bool(chosen[:, nb - recent:].all())
    if ties:  # equal keys are exactly equal here too: of those, the kernel must take the highest ids (prhs/selection.cc)
        order = nb - 1 - torch.sort(-key.flip(1), dim=1, stable=True).indices[:, :k_used]
        expected = torch.zeros_like(chosen).scatter_(1, order, True)
        ok_sel &= torch.equal(expected, chosen)
    # exact attention over the selected blocks only
    pos_mask = chosen.repeat_interleave(BLOCK, dim=1)[:, :T].repeat_interleave(group, dim=0)  # [H][T]
    s_sel = torch.where(pos_mask, scores, -torch.inf)
    ref_sparse = torch.einsum('ht,htd->hd', torch.softmax(s_sel, 1), v_rep)
    e_sparse = rel_err(out, ref_sparse)
    delta_exact = (probs * (~pos_mask)).sum(1)  # the true left-out mass under full softmax
    ok_delta = bool(torch.isfinite(delta).all()) and bool((delta.double() >= delta_exact - 1e-6).all())
    ok_sp = ok_bound and ok_sel and e_sparse < 1e-5 and ok_delta
    ok &= ok_sp
    log(f'  sparse  {name}: budget {k_used}/{nb} blocks, rel err vs selected-set ref {e_sparse:.2e}, '
        f'ub>=max score {ok_bound}, selection {ok_sel}, delta_bound>=delta {ok_delta} '
        f'(mean delta {delta_exact.mean().item():.3g}, mean bound {delta.mean().item():.3g}), '
        f'out vs dense {rel_err(out, ref_out):.2e} {"ok" if ok_sp else "FAIL"}')
    results.append(dict(case=name, dense_rel_err=e_out, dense_lse_abs_err=e_lse, summaries_exact=ok_sum,
                        sparse_rel_err=e_sparse, sparse_budget_blocks=k_used, n_blocks=nb, bound_holds=ok_bound,
                        selection_ok=ok_sel, certificate_holds=ok_delta,
                        mean_delta_exact=delta_exact.mean().item(), mean_delta_bound=delta.mean().item(),
                        sparse_vs_dense_rel=rel_err(out, ref_out), ok=bool(ok)))
    return ok


# ---------------------------------------------------------------------------------------------
# Timing

def copy_bandwidth():
    """Device-to-device copy of 2 GiB, bytes read + written per second (median of 20)."""
    src = torch.randn(512 * 1024 * 1024, device='cuda')
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(20):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    times.sort()
    t = times[len(times) // 2]
    del src, dst
    torch.cuda.empty_cache()
    return 2 * 4 * 512 * 1024 * 1024 / t


def time_graph(calls, reps=20):
    """Median seconds per call: one CUDA graph runs every call in `calls` once (each on its own
    input copy); it is replayed `reps` times after a warm-up."""
    for c in calls:  # warm-up outside capture: module load, attributes, allocator
        c()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for c in calls:
            c()
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        for c in calls:
            c()
    return time_replays(g, len(calls), reps)


def time_replays(g, n_calls, reps):
    """Seconds per call of a captured graph that makes `n_calls` calls: two warm replays, then `reps` timed."""
    g.replay()
    g.replay()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        per_call.append(a.elapsed_time(b) / 1e3 / n_calls)
    per_call.sort()
    return dict(median_s=per_call[len(per_call) // 2], min_s=per_call[0], max_s=per_call[-1], calls=n_calls, reps=reps)


class ContextInputs:
    """One context's inputs, shared by every variant timed on it: `copies` paged caches (by default
    enough to rotate beyond L2) and queries."""

    def __init__(self, T, gen, H=32, n_kv=8, D=128, rotate_bytes=1.6e9, copies=None, keep_dense=True):
        self.T, self.H, self.n_kv, self.D = T, H, n_kv, D
        self.nb = T // BLOCK
        self.kv_bytes = 2 * n_kv * T * D * 2
        self.copies = copies or max(2, math.ceil(rotate_bytes / self.kv_bytes))
        log(f'context {T}: {self.copies} input copies ({self.copies * self.kv_bytes / 1e9:.2f} GB of KV per layout)')
        self.caches = [PagedCache(n_kv, T, D, gen, keep_dense=keep_dense) for _ in range(self.copies)]
        self.qs = [torch.randn(H, D, device='cuda', generator=gen) for _ in range(self.copies)]
        self.q16 = [q.to(torch.float16).view(1, H, 1, D) for q in self.qs]


def bench_context(lib, inputs, bw, budget_frac=0.05, profile=False):
    x = inputs
    H, n_kv, D, nb, caches, qs, q16 = x.H, x.n_kv, x.D, x.nb, x.caches, x.qs, x.q16
    group = H // n_kv
    log(f'context {x.T}, {os.path.basename(lib.path)}:')
    for c in caches:  # each variant's own summaries
        lib.summaries(c)
    torch.cuda.synchronize()

    budget = math.ceil(budget_frac * nb)
    out = torch.empty(H, D, device='cuda')
    lse = torch.empty(H, device='cuda')
    delta = torch.empty(H, device='cuda')
    ws = lib.attention_workspace(H, D)
    sel_ws = lib.select_workspace(n_kv, group, nb)
    selected = torch.empty(n_kv, budget, device='cuda', dtype=torch.int32)
    log2u = torch.empty(H, device='cuda')
    torch_out = [None]

    def sdpa(i):
        return lambda: torch_out.__setitem__(0, F.scaled_dot_product_attention(
            q16[i], caches[i].dense_k, caches[i].dense_v, enable_gqa=True))

    def dense(i):
        return lambda: lib.dense(qs[i], caches[i], out, lse, ws)

    def sparse(i):
        return lambda: lib.sparse(qs[i], caches[i], budget, 1, 2, selected, log2u, sel_ws, out, lse, delta, ws)

    def select(i):  # the selection alone: its share of prhs
        return lambda: lib.select(qs[i], caches[i], budget, 1, 2, selected, log2u, sel_ws)

    row = dict(context=x.T, copies=x.copies, kv_bytes=x.kv_bytes, budget_blocks=budget, n_blocks=nb)
    # dense agreement with PyTorch on the last copy (fp16 output of SDPA vs our fp32)
    sdpa(0)()
    dense(0)()
    torch.cuda.synchronize()
    row['dense_vs_sdpa_rel'] = rel_err(out, torch_out[0].view(H, D).double())
    for label, make in (('sdpa', sdpa), ('dense', dense), ('prhs', sparse), ('prhs_select', select),
                        ('sdpa_again', sdpa), ('dense_again', dense)):
        row[label] = time_graph([make(i) for i in range(x.copies)])
        log(f'  {label:12s} {row[label]["median_s"] * 1e6:9.1f} us  (min {row[label]["min_s"] * 1e6:.1f}, '
            f'max {row[label]["max_s"] * 1e6:.1f})')
    summary_bytes = 2 * nb * n_kv * D * 2
    selected_bytes = 2 * n_kv * budget * BLOCK * D * 2
    if profile:
        row['kernels'] = profile_kernels([dense(0), sparse(0), sdpa(0)])
    row['floor_dense_s'] = x.kv_bytes / bw
    row['floor_prhs_s'] = (summary_bytes + selected_bytes) / bw
    row['prhs_bytes'] = summary_bytes + selected_bytes
    row['mean_delta_bound_random'] = delta.mean().item()
    return row


def profile_kernels(calls, reps=20):
    """Mean GPU time of each kernel, per call, from PyTorch's profiler (CUPTI)."""
    from torch.profiler import profile, ProfilerActivity
    out = {}
    for c in calls:
        c()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(reps):
                c()
            torch.cuda.synchronize()
        for e in prof.key_averages():
            if e.device_type == torch.autograd.DeviceType.CUDA and e.count:
                name = e.key[:60]
                out[name] = e.device_time_total / reps
                log(f'    kernel {name:60s} {e.device_time_total / reps:8.1f} us/call')
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib', action='append', help='prebuilt library (several: compare variants)')
    ap.add_argument('--contexts', default='8192,32768,131072')
    ap.add_argument('--out', default=None)
    ap.add_argument('--skip-checks', action='store_true')
    ap.add_argument('--checks-only', action='store_true', help='no timing (e.g. under compute-sanitizer)')
    ap.add_argument('--profile', action='store_true', help='per-kernel times (PyTorch profiler)')
    ap.add_argument('--short-checks', action='store_true', help='only the checks up to 32K positions (sanitizers)')
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    libs = args.lib or [build_library(os.path.join(ROOT, 'native', 'build', 'librl_cuda_bench.so'))]
    dev = torch.cuda.get_device_properties(0)
    log(f'device: {dev.name}, {dev.multi_processor_count} SMs, torch {torch.__version__}')
    gen = torch.Generator(device='cuda')
    gen.manual_seed(int(time.time()))  # fresh inputs every run
    report = dict(device=dev.name, date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  torch=torch.__version__, command=' '.join(sys.argv), checks=[], variants=[])
    # The device copy of the tree may have no .git: REPO_LENS_COMMIT names the commit then.
    commit = os.environ.get('REPO_LENS_COMMIT', '')
    if not commit:
        try:
            out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=ROOT, capture_output=True, text=True)
            commit = out.stdout.strip() if out.returncode == 0 else 'unknown'
        except OSError:
            commit = 'unknown'
    report['commit'] = commit

    all_ok = True
    for path in libs:
        lib = Lib(path)
        if not args.skip_checks:
            log(f'checks ({os.path.basename(path)}):')
            # the last two: every key tied, and the longest sequence the selection takes (8191 blocks)
            for (H, n_kv, D, T, frac, planted, ties) in [
                    (32, 8, 128, 4133, 0.05, 0, False), (32, 8, 128, 70, 0.5, 0, False),
                    (32, 8, 128, 20000, 0.05, 6, False), (12, 2, 128, 3001, 0.1, 4, False),
                    (8, 8, 64, 777, 0.2, 0, False), (14, 2, 64, 3000, 0.05, 5, False),
                    (16, 8, 128, 1, 1.0, 0, False), (32, 8, 128, 20000, 0.05, 0, True),
                    (8, 2, 64, 262100, 0.05, 3, False)]:
                if args.short_checks and T > 32768:
                    continue
                all_ok &= check_case(lib, gen, H, n_kv, D, T, frac, planted, report['checks'], ties)
    report['checks_ok'] = bool(all_ok)
    if args.checks_only:
        log('\nchecks: ' + ('all passed' if all_ok else 'FAILED'))
        sys.exit(0 if all_ok else 1)
    bw = copy_bandwidth()
    report['copy_bandwidth_Bps'] = bw
    log(f'copy bandwidth (read + write): {bw / 1e12:.2f} TB/s')
    # Context by context, every variant on the same inputs, the order turned each context. The
    # process's first timings are thrown away: they read ~1 us (6 %) faster at 8K than the same
    # library timed again, whichever came first.
    variants = [Lib(path) for path in libs]
    rows = [[] for _ in variants]
    for ci, T in enumerate(args.contexts.split(',')):
        inputs = ContextInputs(int(T), gen)
        if ci == 0:
            log('warm-up, not kept:')
            bench_context(variants[0], inputs, bw)
        for vi in [(ci + k) % len(variants) for k in range(len(variants))]:
            rows[vi].append(bench_context(variants[vi], inputs, bw, profile=args.profile))
        del inputs
        torch.cuda.empty_cache()
    for path, r in zip(libs, rows):
        report['variants'].append(dict(lib=os.path.basename(path), rows=r))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)

    log('\nchecks: ' + ('all passed' if all_ok else 'FAILED'))
    log(f'{"variant":14s} {"ctx":>7s} {"sdpa us":>8s} {"dense us":>9s} {"d/sdpa":>7s} {"floor":>7s} {"prhs us":>8s} '
        f'{"sdpa/prhs":>9s} {"p floor":>8s} {"p/floor":>7s} {"select us":>9s}')
    for v in report['variants']:
        for r in v['rows']:
            sd, de, pr = r['sdpa']['median_s'] * 1e6, r['dense']['median_s'] * 1e6, r['prhs']['median_s'] * 1e6
            log(f'{v["lib"][:14]:14s} {r["context"]:7d} {sd:8.1f} {de:9.1f} {de / sd:7.2f} '
                f'{r["floor_dense_s"] * 1e6:7.1f} {pr:8.1f} {sd / pr:9.1f} {r["floor_prhs_s"] * 1e6:8.1f} '
                f'{pr / (r["floor_prhs_s"] * 1e6):7.2f} {r["prhs_select"]["median_s"] * 1e6:9.1f}')
    sys.exit(0 if all_ok else 1)


if __name__ == '__main__':
    main()
