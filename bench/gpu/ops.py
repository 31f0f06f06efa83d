#!/usr/bin/env python3
"""The forward pass's other CUDA ops (native/cuda): correctness against float64 references of the
CPU backend's definitions (native/backend.h), then decode matrix-vector speed beside PyTorch.

Usage (from the repository root, on a CUDA machine with nvcc and PyTorch):
  python3 bench/gpu/ops.py [--lib build.so] [--out results.json]
Checks, each on fresh random inputs with NaN-poisoned outputs, for F32, F16 and BF16 weights:
embedding, RMSNorm, matvec (+bias, 1..5 tokens), matvec_any (any cols, up to 64 tokens), RoPE
(positions up to 131071), SwiGLU, add, and the forward pass's float32 KV append and causal
attention over a paged cache (GQA, prefill and decode), and the attention over chosen blocks that
sparse decode uses in the engine (chosen_attention). --checks-only skips the timing.
Checks the prefill GEMM (F16, BF16 weights; --gemm: that alone, then its timing), our kernel and, when
libcublasLt loads at run time (native/cuda/cublaslt.cuh), the Half GEMM through cuBLASLt.
Checks the prefill attention (GQA, causal over a paged cache after a cached prefix; --prefill: that
alone, then its timing at 1024 queries over 8K/32K/128K contexts beside SDPA in bf16 and fp32).
Checks the dense decode attention (1..17 tokens, groups 1..32, head dims 64/96/128/256, contexts up to
128K; --dense: that alone, then its timing for 1 token over 8K/32K/128K at Qwen2.5-Coder-1.5B's shape
beside SDPA on float32 K/V with enable_gqa and the floor; --compare LABEL=LIB adds another build).
Checks the attention over chosen blocks (--chosen: that alone, then its timing for a layer at 5% of
the blocks at 32K and 128K, the 1.5B shape; --compare as for --dense).
Checks the fused decode products (decode_linear: q/k/v with rmsnorm and bias, the residual add, gate/up
with SwiGLU; F32/F16/BF16, 1..15 tokens, every split and variant) against float64 and rope_kv_append
bit for bit against rope + kv_append + key_summary_append (--decode: those alone, then decode_linear
at the 1.5B matrices beside the old matvec, F.linear and the floor, and a layer without its attention,
16 launches old beside 5 fused).
Times matvec at Qwen2.5-Coder-1.5B's decode shapes (bf16 weights) beside torch.nn.functional.linear
on bf16 (cuBLAS), rotating weight copies beyond the L2 cache, with the floor (weight bytes / copy
bandwidth), and the GEMM at 2048 tokens beside F.linear on bf16 (TFLOP/s). Prints tables last.
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attention as A  # noqa: E402  (the library loader, timing and bandwidth helpers)

TYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


# The prefill GEMM: tails in every dimension (tokens past a 64-token tile, rows past a 128-row
# tile, cols past a 32-column slice), with and without bias.
GEMM_CASES = ((16, 1536, 1536, True), (17, 256, 1536, True), (100, 8960, 1536, False), (1000, 1536, 8960, False),
              (17, 72, 64, True), (100, 64, 72, False), (33, 200, 40, True), (1000, 256, 1536, True),
              (300, 768, 768, False), (300, 128, 768, True), (300, 768, 256, False))  # the last: qwen2-hd128's (prefill_model.py)


def check_linear(lib, gen, record, nan, op, dt, cases, extra=(), label=None, tol=1e-5):
    """y = x W^T (+ bias) of the C entry `op` (rl_matvec, rl_matvec_any, rl_gemm) against float64, for
    (n, rows, cols, with_bias) cases; W in dt, x and bias float32; `extra` arguments after y."""
    tn, label = str(dt).split('.')[-1], label or op.removeprefix('rl_')
    for n, rows, cols, with_bias in cases:
        x = torch.randn(n, cols, device='cuda', generator=gen)
        w = (torch.randn(rows, cols, device='cuda', generator=gen) / math.sqrt(cols)).to(dt)
        bias = torch.randn(rows, device='cuda', generator=gen) if with_bias else None
        y = nan(n, rows)
        lib._call(op, x, n, w, TYPES[dt], rows, cols, bias, y, *extra)
        torch.cuda.synchronize()
        ref = x.double() @ w.double().T + (bias.double() if with_bias else 0)
        record(f'{label} {tn} n{n} {rows}x{cols}' + (' +bias' if with_bias else ''), A.rel_err(y, ref), tol)


# Prefill precisions (native/cuda/prefill_precision.cuh): the C entries' code, and the tolerance
# against float64: Float32 keeps float32-level results; Half rounds operands to 16 bits as
# transformers' bf16 prefill does (the issue's bf16 tolerance, 1e-2).
PRECISIONS = (('float32', 0, 1e-5), ('half', 1, 1e-2))


# GemmLibrary::CublasLt (native/cuda/gemm.cuh): rl_gemm_lib's `library` for the cuBLASLt product.
GEMM_CUBLASLT = 1


def cublaslt_version(lib):
    """cublasLtGetVersion() of the cuBLASLt the library loads at run time, 0 when none (cublaslt.cuh)."""
    lib.so.rl_cublaslt_version.restype = ctypes.c_size_t
    return lib.so.rl_cublaslt_version()


def gemm_workspace(lib, library, n, cols, precision):
    """Device workspace rl_gemm_lib needs for `library` at n tokens of cols values."""
    lib.so.rl_gemm_workspace_bytes.restype = ctypes.c_size_t
    nbytes = lib.so.rl_gemm_workspace_bytes(library, n, cols, precision)
    return torch.empty(max(nbytes, 1), dtype=torch.uint8, device='cuda')


def check_gemm(lib, gen, record, nan):
    """Our kernel in both precisions, and cuBLASLt (Half only: gemm_cublaslt.cuh) when it loads, against float64."""
    version = cublaslt_version(lib)
    A.log(f'cublaslt: version {version}' if version else 'cublaslt: not found')
    most_n, most_cols = max(c[0] for c in GEMM_CASES), max(c[2] for c in GEMM_CASES)
    for name, code, tol in PRECISIONS:
        lt = version and name == 'half'
        ws = gemm_workspace(lib, GEMM_CUBLASLT, most_n, most_cols, code) if lt else None
        for dt in (torch.float16, torch.bfloat16):
            check_linear(lib, gen, record, nan, 'rl_gemm', dt, GEMM_CASES, extra=(code,),
                         label='gemm' if code == 0 else f'gemm {name}', tol=tol)
            if lt:
                label = f'gemm cublaslt {name}'
                try:
                    check_linear(lib, gen, record, nan, 'rl_gemm_lib', dt, GEMM_CASES, extra=(code, GEMM_CUBLASLT, ws),
                                 label=label, tol=tol)
                    check_mlp16(lib, gen, record, dt, ws, tol)
                except RuntimeError as e:  # cuBLASLt refused a case (its reason is on stderr): a failed check, not a crash
                    A.log(f'{label} {str(dt).split(".")[-1]}: {e}')
                    record(f'{label} {str(dt).split(".")[-1]} (did not run)', float('inf'), tol)


def check_mlp16(lib, gen, record, dt, ws, tol):
    """The Half prefill MLP's pieces (backend_cuda.cu's mlp): cuBLASLt's products in W's 16-bit type and SwiGLU
    from 16-bit gate and up against float64; the widening to float32 exact."""
    tn = str(dt).split('.')[-1]
    for n, rows, cols, _ in GEMM_CASES:
        x = torch.randn(n, cols, device='cuda', generator=gen)
        w = (torch.randn(rows, cols, device='cuda', generator=gen) / math.sqrt(cols)).to(dt)
        y16 = torch.full((n, rows), float('nan'), device='cuda', dtype=dt)
        lib._call('rl_gemm_cublaslt16', x, n, w, TYPES[dt], rows, cols, y16, ws)
        torch.cuda.synchronize()
        record(f'gemm cublaslt 16-bit out {tn} n{n} {rows}x{cols}', A.rel_err(y16, x.double() @ w.double().T), tol)
    for count in (8, 4096, 1 << 20):
        g, u = (torch.randn(count, device='cuda', generator=gen) * 3).to(dt), torch.randn(count, device='cuda', generator=gen).to(dt)
        out16 = torch.full((count,), float('nan'), device='cuda', dtype=dt)
        lib._call('rl_swiglu16_rounded', g, u, count, out16, TYPES[dt])
        wide = torch.full((count,), float('nan'), device='cuda')
        lib._call('rl_widen16', out16, count, wide, TYPES[dt])
        torch.cuda.synchronize()
        gd = g.double()
        record(f'swiglu16 rounded {tn} {count}', A.rel_err(out16, gd / (1 + torch.exp(-gd)) * u.double()), tol)
        record(f'widen16 {tn} {count}', 0.0 if torch.equal(wide, out16.float()) else float('inf'), 0.0)


# Prefill attention (n_heads, n_kv, head_dim, block_size, pos0, n): pos0 = 0 and a chunk after a
# cached prefix, chunks that are not a multiple of the query tile (128 // group tokens), head dims 64
# and 128, groups 1, 4, 6 and 7, decode-sized chunks after a long prefix (keys split over CTAs), and
# the chunks forward_check runs on bench/gpu/prefill_model.py's model (6 query heads on 1 KV head),
# and the timed chunks at 32K and 128K (long sums: the tensor cores truncate into accumulators).
PREFILL_CASES = ((12, 2, 128, 32, 0, 101), (12, 2, 128, 16, 777, 75), (8, 8, 64, 16, 0, 130), (32, 8, 128, 32, 1500, 37),
                 (8, 2, 64, 32, 300, 64), (12, 2, 128, 32, 5000, 16), (4, 4, 128, 64, 3000, 200), (14, 2, 64, 16, 2000, 100),
                 (12, 2, 128, 32, 3000, 1024), (16, 16, 128, 32, 40, 17), (6, 1, 128, 32, 0, 300), (6, 1, 128, 32, 69, 231),
                 (12, 2, 128, 32, 31744, 1024), (12, 2, 128, 32, 130048, 1024))


def paged_kv(gen, n_kv, head_dim, block_size, length):
    """A float32 paged cache [n_phys][n_kv][block_size][head_dim] holding keys, values [length][n_kv][head_dim]
    at shuffled physical blocks, NaN in every slot past the sequence end and in the unused blocks."""
    n_logical = (length + block_size - 1) // block_size
    n_phys = n_logical + 3
    table = torch.randperm(n_phys, device='cuda', generator=gen)[:n_logical].to(torch.int32)
    k_cache = torch.full((n_phys, n_kv, block_size, head_dim), float('nan'), device='cuda')
    v_cache = torch.full_like(k_cache, float('nan'))
    keys = torch.randn(length, n_kv, head_dim, device='cuda', generator=gen)
    values = torch.randn(length, n_kv, head_dim, device='cuda', generator=gen)
    pos = torch.arange(length, device='cuda')
    k_cache[table.long()[pos // block_size], :, pos % block_size] = keys
    v_cache[table.long()[pos // block_size], :, pos % block_size] = values
    return table, k_cache, v_cache, keys, values


def prefill_call(lib, table, k_cache, v_cache, n_kv, head_dim, block_size, pos0, n, n_heads, q, out, precision=0):
    """rl_prefill_attention with its workspace, as a call."""
    lib.so.rl_prefill_attention_workspace_floats.restype = ctypes.c_size_t
    ws_floats = lib.so.rl_prefill_attention_workspace_floats(n_kv, head_dim, block_size, pos0, n, n_heads, precision)
    ws = torch.empty(ws_floats, device='cuda') if ws_floats else None
    scale = float(head_dim ** -0.5)
    return lambda: lib._call('rl_prefill_attention', k_cache, v_cache, table, n_kv, head_dim, block_size, pos0, n, n_heads,
                             scale, q, out, ws, precision)


def kept_prefill_calls(lib, gen, table, k_cache, v_cache, n_kv, head_dim, block_size, pos0, n, n_heads, q, out, precision):
    """rl_prefill_attention_kept twice on one layer's tiles: positions [0, pos0) (their output dropped), then
    [pos0, pos0 + n) into out, converting only from pos0 on."""
    lib.so.rl_prefill_kv_tiles_halves.restype = ctypes.c_size_t
    lib.so.rl_prefill_attention_kept_workspace_floats.restype = ctypes.c_size_t
    stride = lib.so.rl_prefill_kv_tiles_stride(pos0 + n + 100)  # room past the end, as a cache's would have
    tiles = torch.full((lib.so.rl_prefill_kv_tiles_halves(n_kv, head_dim, stride, precision),), float('nan'),
                       dtype=torch.float16, device='cuda')
    scale = float(head_dim ** -0.5)
    first_q = torch.randn(pos0, n_heads, head_dim, device='cuda', generator=gen)
    first_out = torch.empty_like(first_q)
    for p0, count, qq, o, frm in ((0, pos0, first_q, first_out, 0), (pos0, n, q, out, pos0)):
        ws_floats = lib.so.rl_prefill_attention_kept_workspace_floats(n_kv, head_dim, block_size, p0, count, n_heads, precision)
        ws = torch.empty(ws_floats, device='cuda') if ws_floats else None
        lib._call('rl_prefill_attention_kept', k_cache, v_cache, table, n_kv, head_dim, block_size, p0, count, n_heads, scale,
                  qq, o, ws, precision, tiles, stride, frm)
    torch.cuda.synchronize()


def check_prefill(lib, gen, record, nan):
    for n_heads, n_kv, head_dim, block_size, pos0, n in PREFILL_CASES:
        length = pos0 + n
        table, k_cache, v_cache, keys, values = paged_kv(gen, n_kv, head_dim, block_size, length)
        q = torch.randn(n, n_heads, head_dim, device='cuda', generator=gen)
        causal = torch.arange(length, device='cuda')[None, :] <= (pos0 + torch.arange(n, device='cuda'))[:, None]
        ref = torch.empty(n, n_heads, head_dim, dtype=torch.float64, device='cuda')
        for h in range(n_heads):  # one query head at a time: [n][length] float64 scores
            kv_head = h // (n_heads // n_kv)
            scores = (q[:, h].double() @ keys[:, kv_head].double().T) * head_dim ** -0.5
            ref[:, h] = torch.softmax(scores.masked_fill(~causal, float('-inf')), -1) @ values[:, kv_head].double()
        for name, code, tol in PRECISIONS:
            out = nan(n, n_heads, head_dim)
            prefill_call(lib, table, k_cache, v_cache, n_kv, head_dim, block_size, pos0, n, n_heads, q, out, code)()
            torch.cuda.synchronize()
            label = 'prefill_attention' if code == 0 else f'prefill_attention {name}'
            record(f'{label} h{n_heads}/{n_kv} d{head_dim} b{block_size} pos0 {pos0} n{n}', A.rel_err(out, ref), tol)
            if 0 < pos0 <= 5000:  # the keys before pos0 converted by an earlier call into kept tiles (NaN before it)
                out = nan(n, n_heads, head_dim)
                kept_prefill_calls(lib, gen, table, k_cache, v_cache, n_kv, head_dim, block_size, pos0, n, n_heads, q, out, code)
                record(f'{label}, tiles kept from pos0 h{n_heads}/{n_kv} d{head_dim} b{block_size} pos0 {pos0} n{n}',
                       A.rel_err(out, ref), tol)
        del scores, ref
        torch.cuda.empty_cache()


# Dense decode attention over the float32 paged cache (n_heads, n_kv, head_dim, block_size, pos0, n):
# groups 1, 4, 6, 7, 8 and 32 with head dims 64, 128 and 256 (the decode path), 1 to 16 tokens (rows in
# several tiles of the group), contexts from 1 position to 128K, tails that end mid-block, block sizes
# 1, 5, 16, 32 and 64; and calls the per-(token, head) kernel takes (17 tokens, head_dim 96).
DENSE_DECODE_CASES = ((12, 2, 128, 32, 0, 1), (4, 4, 64, 16, 0, 4), (2, 2, 64, 16, 70, 3), (8, 2, 64, 16, 99, 1),
                      (12, 2, 64, 32, 7000, 1), (14, 2, 64, 32, 4093, 2), (8, 2, 128, 32, 3333, 2), (7, 1, 128, 32, 555, 1),
                      (12, 2, 128, 32, 1000, 1), (28, 4, 128, 32, 2500, 4), (32, 8, 128, 16, 777, 3), (16, 2, 256, 32, 3000, 1),
                      (6, 1, 128, 64, 50000, 4), (32, 1, 128, 32, 5000, 1), (2, 2, 128, 32, 20000, 2), (12, 2, 128, 32, 15, 16),
                      (12, 2, 128, 32, 8191, 1), (12, 2, 128, 32, 32777, 1), (12, 2, 128, 32, 131071, 1),
                      (12, 2, 128, 32, 131053, 3), (32, 8, 128, 32, 131000, 2), (12, 2, 128, 5, 300, 2), (4, 1, 64, 1, 40, 3),
                      (8, 2, 64, 16, 1000, 17), (8, 2, 96, 16, 500, 1))


def dense_call(lib, table, k_cache, v_cache, n_kv, head_dim, block_size, pos0, n, n_heads, q, out, poison_workspace=False):
    """rl_dense_attention_f32 with its workspace (NaN-filled when asked: unwritten partials would show), as a call."""
    lib.so.rl_dense_attention_f32_workspace_floats.restype = ctypes.c_size_t
    ws_floats = lib.so.rl_dense_attention_f32_workspace_floats(n, n_heads, head_dim, pos0)
    ws = (torch.full((ws_floats,), float('nan'), device='cuda') if poison_workspace else torch.empty(ws_floats, device='cuda')) \
        if ws_floats else None
    scale = float(head_dim ** -0.5)
    return lambda: lib._call('rl_dense_attention_f32', k_cache, v_cache, table, n_kv, head_dim, block_size, pos0, n, n_heads,
                             scale, q, out, ws)


def check_dense_decode(libs, gen, record, nan, max_context=None):
    """Each case (up to max_context positions) against float64 on the same inputs for every (label, lib);
    the error is the largest relative error of one (token, head) row."""
    for n_heads, n_kv, head_dim, block_size, pos0, n in DENSE_DECODE_CASES:
        length = pos0 + n
        if max_context and length > max_context:
            continue
        table, k_cache, v_cache, keys, values = paged_kv(gen, n_kv, head_dim, block_size, length)
        q = torch.randn(n, n_heads, head_dim, device='cuda', generator=gen)
        causal = torch.arange(length, device='cuda')[None, :] <= (pos0 + torch.arange(n, device='cuda'))[:, None]
        ref = torch.empty(n, n_heads, head_dim, dtype=torch.float64, device='cuda')
        for h in range(n_heads):
            kv_head = h // (n_heads // n_kv)
            scores = (q[:, h].double() @ keys[:, kv_head].double().T) * head_dim ** -0.5
            ref[:, h] = torch.softmax(scores.masked_fill(~causal, float('-inf')), -1) @ values[:, kv_head].double()
        for label, lib in libs:
            out = nan(n, n_heads, head_dim)
            dense_call(lib, table, k_cache, v_cache, n_kv, head_dim, block_size, pos0, n, n_heads, q, out, True)()
            torch.cuda.synchronize()
            o = out.double()
            err = ((o - ref).norm(dim=-1) / ref.norm(dim=-1)).max().item() if torch.isfinite(o).all() else float('inf')
            record(f'dense_attention{label} h{n_heads}/{n_kv} d{head_dim} b{block_size} pos0 {pos0} n{n}', err, 1e-5)
        del table, k_cache, v_cache, keys, values, ref
        torch.cuda.empty_cache()


def bench_dense_decode(libs, gen, bw, contexts=(8192, 32768, 131072), n_heads=12, n_kv=2, head_dim=128, block_size=32,
                       rotate_bytes=1.6e9):
    """One layer's decode attention (1 token at the end of the context) at Qwen2.5-Coder-1.5B's shape
    (12 query heads, 2 KV heads, head dim 128, float32 K/V): each (label, lib) beside PyTorch SDPA on
    the same float32 K/V ([1][heads][T][hd], enable_gqa), rotating over input copies beyond the L2
    cache; floor = K/V bytes / copy bandwidth. The kernels of one call of each, from the profiler."""
    rows_out = []
    for T in contexts:
        kv_bytes = 2 * n_kv * T * head_dim * 4
        copies = max(2, math.ceil(rotate_bytes / kv_bytes))
        pos0, n = T - 1, 1
        ours_calls = {label: [] for label, _ in libs}
        sdpa_calls, outs = [], []
        for _ in range(copies):
            table, k_cache, v_cache, keys, values = paged_kv(gen, n_kv, head_dim, block_size, T)
            q = torch.randn(n, n_heads, head_dim, device='cuda', generator=gen)
            out = torch.empty_like(q)
            for label, lib in libs:
                ours_calls[label].append(dense_call(lib, table, k_cache, v_cache, n_kv, head_dim, block_size, pos0, n, n_heads,
                                                    q, out))
            q4 = q.transpose(0, 1)[None]  # [1][heads][1][hd]
            k4, v4 = keys.transpose(0, 1)[None].contiguous(), values.transpose(0, 1)[None].contiguous()  # [1][n_kv][T][hd]
            sdpa_calls.append(lambda q4=q4, k4=k4, v4=v4: F.scaled_dot_product_attention(q4, k4, v4, enable_gqa=True))
            outs.append((q4, k4, v4, out))
            del keys, values
        r = dict(context=T, n_heads=n_heads, n_kv=n_kv, head_dim=head_dim, block_size=block_size, copies=copies,
                 kv_bytes=kv_bytes, floor_s=kv_bytes / bw)
        for label, _ in libs:
            r['ours' + label] = A.time_graph(ours_calls[label])
        r['sdpa_fp32'] = A.time_graph(sdpa_calls)
        ours_calls[libs[0][0]][0]()  # agreement of ours and SDPA on the first copy (both float32)
        q4, k4, v4, out = outs[0]
        r['ours_vs_sdpa_rel'] = A.rel_err(out, sdpa_calls[0]().transpose(1, 2)[0].double())
        A.log(f'  context {T:6d} ({copies} copies): ' + ', '.join(
            f'ours{label} {r["ours" + label]["median_s"] * 1e6:7.1f} us' for label, _ in libs) +
            f', sdpa fp32 {r["sdpa_fp32"]["median_s"] * 1e6:7.1f} us, floor {r["floor_s"] * 1e6:6.1f} us, '
            f'ours vs sdpa {r["ours_vs_sdpa_rel"]:.1e}')
        r['kernels_ours'] = A.profile_kernels([ours_calls[libs[0][0]][0]])
        r['kernels_sdpa'] = A.profile_kernels([sdpa_calls[0]])
        rows_out.append(r)
        del ours_calls, sdpa_calls, outs
        torch.cuda.empty_cache()
    return rows_out


def print_dense_decode(rows, labels):
    A.log(f'{"dense decode, 1 layer":22s} ' + ' '.join(f'{"ours" + l + " us":>10s}' for l in labels) +
          f' {"sdpa us":>8s} {"ours/sdpa":>9s} {"floor us":>8s} {"ours/floor":>10s}')
    for r in rows:
        o, t, f = r['ours' + labels[0]]['median_s'], r['sdpa_fp32']['median_s'], r['floor_s']
        A.log(f'{"ctx " + str(r["context"]) + ", 12/2 hd128":22s} ' +
              ' '.join(f'{r["ours" + l]["median_s"] * 1e6:10.1f}' for l in labels) +
              f' {t * 1e6:8.1f} {o / t:9.2f} {f * 1e6:8.1f} {o / f:10.2f}')


# Attention over chosen blocks (chosen_attention, sparse decode in the engine): (n_heads, n_kv, head_dim,
# block_size, context, share of the blocks chosen, adds): the chosen blocks (random, the partial tail block
# among them) folded into a NaN-poisoned state in several calls: 'half' (two calls), 'all' (one), 'empty'
# (a fresh call with no block, then all), 'singles' (all but 3, then those one at a time, as the
# certificate's expansion adds them). Groups 1 to 32, head dims 64/128/256 and 16 (the other kernel).
CHOSEN_CASES = ((12, 2, 128, 32, 8190, 0.5, 'half'), (12, 2, 128, 32, 131067, 0.05, 'singles'),
                (12, 2, 128, 32, 32768, 0.05, 'all'), (32, 8, 128, 16, 5000, 0.3, 'empty'), (8, 2, 64, 16, 999, 0.5, 'half'),
                (14, 2, 64, 32, 4000, 0.2, 'singles'), (16, 2, 256, 32, 3000, 0.25, 'half'), (32, 1, 128, 32, 2000, 0.5, 'all'),
                (4, 4, 128, 5, 301, 0.5, 'singles'), (8, 4, 16, 16, 300, 0.5, 'half'))


def chosen_adds(lib, kv, n_kv, head_dim, block_size, kv_head, length, blocks, group, q, plan, state):
    """rl_chosen_attention_add calls folding `blocks` of KV head kv_head into `state` as `plan` says."""
    table, k_cache, v_cache = kv
    scale = float(head_dim ** -0.5)
    n = blocks.numel()
    pieces = {'all': [blocks], 'half': [blocks[:n // 2], blocks[n // 2:]], 'empty': [blocks[:0], blocks],
              'singles': [blocks[:max(n - 3, 0)]] + [blocks[i:i + 1] for i in range(max(n - 3, 0), n)]}[plan]
    for i, piece in enumerate(pieces):
        piece = piece.contiguous()
        lib._call('rl_chosen_attention_add', k_cache, v_cache, table, n_kv, head_dim, block_size, kv_head, length, piece,
                  piece.numel(), kv_head * group, group, scale, q, int(i == 0), state)


def check_chosen(libs, gen, record, nan):
    """Each case against float64 (output and log-sum-exp over the chosen positions) for every (label, lib)."""
    for n_heads, n_kv, head_dim, block_size, length, share, plan in CHOSEN_CASES:
        table, k_cache, v_cache, keys, values = paged_kv(gen, n_kv, head_dim, block_size, length)
        n_logical = table.numel()
        q = torch.randn(1, n_heads, head_dim, device='cuda', generator=gen)
        group = n_heads // n_kv
        for h in range(n_kv):
            count = max(1, math.ceil(share * n_logical))
            chosen = torch.randperm(n_logical - 1, device='cuda', generator=gen)[:count - 1]
            chosen = torch.cat([chosen, torch.tensor([n_logical - 1], device='cuda')])
            chosen = chosen[torch.randperm(chosen.numel(), device='cuda', generator=gen)].to(torch.int32)
            positions = (chosen.long()[:, None] * block_size + torch.arange(block_size, device='cuda')[None, :]).flatten()
            positions = positions[positions < length]
            s = torch.einsum('gd,pd->gp', q[0, h * group:(h + 1) * group].double(), keys[positions, h].double()) * head_dim ** -0.5
            ref_out, ref_lse = torch.softmax(s, -1) @ values[positions, h].double(), torch.logsumexp(s, -1)
            for label, lib in libs:
                state = nan(group, head_dim + 2)
                chosen_adds(lib, (table, k_cache, v_cache), n_kv, head_dim, block_size, h, length, chosen, group, q, plan, state)
                out_h = nan(group, head_dim)
                lib._call('rl_chosen_attention_write', state, group, head_dim, out_h)
                torch.cuda.synchronize()
                o = out_h.double()
                err = ((o - ref_out).norm(dim=-1) / ref_out.norm(dim=-1)).max().item() if torch.isfinite(o).all() else float('inf')
                lse = state[:, head_dim].double() + torch.log(state[:, head_dim + 1].double())
                name = f'chosen{label} h{n_heads}/{n_kv} d{head_dim} b{block_size} kv{h} {chosen.numel()}/{n_logical} {plan}'
                record(name, err, 1e-5)
                record(name + ' lse (abs)', (lse - ref_lse).abs().max().item() if torch.isfinite(lse).all() else float('inf'), 1e-5)
        del table, k_cache, v_cache, keys, values
        torch.cuda.empty_cache()


def time_graph_on_stream(calls, reps=20):
    """attention.time_graph with the warm-up and the capture on one stream: chosen_attention allocates
    its workspace at its first call on a stream, which must not be a capture."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for c in calls:
            c()
    s.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        for c in calls:
            c()
    return A.time_replays(g, len(calls), reps)


def bench_chosen(libs, gen, bw, cases=((32768, 51), (131072, 205)), n_heads=12, n_kv=2, head_dim=128, block_size=32,
                 rotate_bytes=1.6e9):
    """One layer's sparse decode attention in the engine: for each KV head, chosen_attention_add of the
    chosen blocks into a fresh state, then chosen_attention_write (Qwen2.5-Coder-1.5B's shape, 5% of
    the blocks), per (label, lib), rotating over cache copies beyond the L2 cache; floor = the chosen
    K/V bytes / copy bandwidth."""
    rows_out = []
    group = n_heads // n_kv
    for T, count in cases:
        copies = max(2, math.ceil(rotate_bytes / (2 * n_kv * T * head_dim * 4)))
        calls = {label: [] for label, _ in libs}
        for _ in range(copies):
            table, k_cache, v_cache, keys, values = paged_kv(gen, n_kv, head_dim, block_size, T)
            del keys, values
            q = torch.randn(1, n_heads, head_dim, device='cuda', generator=gen)
            lists = [torch.randperm(table.numel(), device='cuda', generator=gen)[:count].to(torch.int32) for _ in range(n_kv)]
            for label, lib in libs:
                state = torch.empty(n_kv, group, head_dim + 2, device='cuda')
                out = torch.empty(1, n_heads, head_dim, device='cuda')

                def layer(lib=lib, kv=(table, k_cache, v_cache), q=q, lists=lists, state=state, out=out):
                    for h in range(n_kv):
                        chosen_adds(lib, kv, n_kv, head_dim, block_size, h, T, lists[h], group, q, 'all', state[h])
                        lib._call('rl_chosen_attention_write', state[h], group, head_dim, out[0, h * group:])
                calls[label].append(layer)
        chosen_bytes = n_kv * count * block_size * head_dim * 4 * 2
        r = dict(context=T, blocks=count, n_blocks=T // block_size, n_heads=n_heads, n_kv=n_kv, head_dim=head_dim,
                 copies=copies, chosen_bytes=chosen_bytes, floor_s=chosen_bytes / bw)
        for label, _ in libs:
            r['ours' + label] = time_graph_on_stream(calls[label])
        A.log(f'  chosen, context {T:6d}, {count} blocks a KV head: ' + ', '.join(
            f'ours{label} {r["ours" + label]["median_s"] * 1e6:8.1f} us' for label, _ in libs) +
            f', floor {r["floor_s"] * 1e6:5.1f} us (a layer: {n_kv} KV heads)')
        rows_out.append(r)
        del calls
        torch.cuda.empty_cache()
    return rows_out


def print_chosen(rows, labels):
    A.log(f'{"chosen attn, 1 layer":22s} ' + ' '.join(f'{"ours" + l + " us":>10s}' for l in labels) +
          f' {"floor us":>8s} {"ours/floor":>10s}')
    for r in rows:
        o = r['ours' + labels[0]]['median_s']
        A.log(f'{"ctx " + str(r["context"]) + ", " + str(r["blocks"]) + " blocks":22s} ' +
              ' '.join(f'{r["ours" + l]["median_s"] * 1e6:10.1f}' for l in labels) +
              f' {r["floor_s"] * 1e6:8.1f} {o / r["floor_s"]:10.2f}')


# Fused decode products (decode_linear.cuh), per mode: (n, rows of each weight, cols, bias, norm, split);
# tails in rows (not a multiple of a CTA's 8 / split rows), cols multiples of 8 down to 8 (fewer chunks
# than warps of a split row), tokens past a group of 4 (5, 13, 15), every split (0: the kernel's choice).
DECODE_STORE_CASES = ((1, (1536, 256, 256), 1536, True, True, 0), (3, (1536, 256, 256), 1536, True, True, 0),
                      (5, (100, 37, 13), 264, True, False, 1), (15, (1536,), 1536, False, False, 0),
                      (1, (151,), 8960, True, False, 8), (4, (77, 5), 1024, False, True, 4), (2, (9, 17, 3), 16, True, True, 2),
                      (1, (8960,), 1536, False, True, 1), (1, (5,), 8, False, True, 8), (13, (1536, 256, 256), 1536, True, True, 0))
DECODE_ADD_CASES = ((1, 1536, 8960, False, 0), (4, 1536, 1536, False, 0), (5, 37, 8960, True, 2), (1, 1000, 24, False, 1),
                    (13, 300, 2048, False, 8))
DECODE_SWIGLU_CASES = ((1, 8960, 1536, True, 0), (3, 300, 264, True, 2), (4, 77, 1536, False, 0), (6, 13, 520, True, 8),
                       (1, 1000, 64, True, 1), (15, 8960, 1536, True, 0))
DECODE_VARIANTS = {0: 'no-L1 W, 4 chunks', 1: 'W via L1 (__ldg)', 2: 'no-L1 W, 8 chunks', 3: "x' in shared memory"}


def decode_linear_call(lib, x, n, cols, norm, mode, dt, parts, split=0, variant=0, eps=1e-6):
    """rl_decode_linear as a call; parts: [(w, bias or None, y or None, rows)], up to 3."""
    flat = []
    for i in range(3):
        flat += list(parts[i]) if i < len(parts) else [None, None, None, 0]
    return lambda: lib._call('rl_decode_linear', x, n, cols, norm, float(eps), mode, TYPES[dt], len(parts), *flat, split, variant)


def normed_ref(x, norm, eps=1e-6):
    xd = x.double()
    return xd / torch.sqrt((xd * xd).mean(1, keepdim=True) + eps) * norm.double() if norm is not None else xd


def check_decode_linear(lib, gen, record, nan):
    rnd = lambda *s: torch.randn(*s, device='cuda', generator=gen)  # noqa: E731
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        tn = str(dt).split('.')[-1]
        variants = (0, 1, 2, 3, 16) if dt == torch.bfloat16 else (0,)
        takes = lambda variant, n, cols: variant != 3 or (n == 1 and cols <= 12288)  # noqa: E731
        weight = lambda rows, cols: (rnd(rows, cols) / math.sqrt(cols)).to(dt)  # noqa: E731
        for n, rows, cols, with_bias, with_norm, split in DECODE_STORE_CASES:
            x, norm = rnd(n, cols) * 3, (rnd(cols) if with_norm else None)
            ws = [weight(r, cols) for r in rows]
            bs = [rnd(r) if with_bias else None for r in rows]
            xn = normed_ref(x, norm)
            for variant in (v for v in variants if takes(v, n, cols)):
                ys = [nan(n, r) for r in rows]
                decode_linear_call(lib, x, n, cols, norm, 0, dt, [(w, b, y, r) for w, b, y, r in zip(ws, bs, ys, rows)], split, variant)()
                torch.cuda.synchronize()
                err = max(A.rel_err(y, xn @ w.double().T + (b.double() if b is not None else 0)) for y, w, b in zip(ys, ws, bs))
                record(f'decode_linear store {tn} n{n} {"+".join(map(str, rows))}x{cols}' + (' +bias' if with_bias else '') +
                       (' norm' if with_norm else '') + f' split {split} v{variant}', err, 1e-5)
        for n, rows, cols, with_bias, split in DECODE_ADD_CASES:
            x, w, b = rnd(n, cols), weight(rows, cols), (rnd(rows) if with_bias else None)
            for variant in (v for v in variants if takes(v, n, cols)):
                y = rnd(n, rows)
                ref = y.double() + x.double() @ w.double().T + (b.double() if b is not None else 0)
                decode_linear_call(lib, x, n, cols, None, 1, dt, [(w, b, y, rows)], split, variant)()
                torch.cuda.synchronize()
                record(f'decode_linear add {tn} n{n} {rows}x{cols}' + (' +bias' if with_bias else '') + f' split {split} v{variant}',
                       A.rel_err(y, ref), 1e-5)
        for n, rows, cols, with_norm, split in DECODE_SWIGLU_CASES:
            x, norm = rnd(n, cols) * 3, (rnd(cols) if with_norm else None)
            wg, wu = weight(rows, cols), weight(rows, cols)
            xn = normed_ref(x, norm)
            g, u = xn @ wg.double().T, xn @ wu.double().T
            ref = g / (1 + torch.exp(-g)) * u
            for variant in (v for v in variants if takes(v, n, cols)):
                y = nan(n, rows)
                decode_linear_call(lib, x, n, cols, norm, 2, dt, [(wg, None, y, rows), (wu, None, None, rows)], split, variant)()
                torch.cuda.synchronize()
                record(f'decode_linear swiglu {tn} n{n} {rows}x{cols}' + (' norm' if with_norm else '') + f' split {split} v{variant}',
                       A.rel_err(y, ref), 1e-5)


# rope_kv_append against rope + kv_append + key_summary_append on the same inputs, bit for bit:
# (n_heads, n_kv, head_dim, block_size, pos0, n, committed length before the write): decode steps, writes
# across block boundaries, overwrites below the committed length, the last position of 128K.
ROPE_KV_CASES = ((12, 2, 128, 32, 8190, 1, 8190), (12, 2, 128, 32, 31, 4, 31), (4, 1, 64, 16, 100, 15, 100),
                 (8, 2, 64, 16, 40, 3, 42), (2, 2, 16, 5, 0, 7, 0), (12, 2, 128, 32, 131071, 1, 131071), (12, 2, 128, 32, 64, 1, 64))


def check_rope_kv_append(lib, gen, record):
    rnd = lambda *s: torch.randn(*s, device='cuda', generator=gen)  # noqa: E731
    for n_heads, n_kv, hd, bs, pos0, n, length in ROPE_KV_CASES:
        n_logical = (max(pos0 + n, length) + bs - 1) // bs
        n_phys = n_logical + 2
        table = torch.randperm(n_phys, device='cuda', generator=gen)[:n_logical].to(torch.int32)
        k_cache, v_cache, summary = rnd(n_phys, n_kv, bs, hd), rnd(n_phys, n_kv, bs, hd), rnd(n_phys, n_kv, 2, hd)
        q, k, v = rnd(n, n_heads, hd), rnd(n, n_kv, hd), rnd(n, n_kv, hd)
        inv_freq = (1.0 / (1e6 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))).float().cuda()
        ref = [t.clone() for t in (q, k, k_cache, v_cache, summary)]
        lib._call('rl_rope', ref[0], n, n_heads, hd, pos0, inv_freq)
        lib._call('rl_rope', ref[1], n, n_kv, hd, pos0, inv_freq)
        lib._call('rl_kv_append', ref[2], ref[3], table, n_kv, hd, bs, pos0, n, ref[1], v)
        lib._call('rl_key_summary_append', ref[4], table, n_kv, hd, bs, pos0, n, length, ref[1])
        for gather in (False, True):  # and the rotated k, then v, gathered for the write-through
            got = [t.clone() for t in (q, k, k_cache, v_cache, summary)]
            staged = torch.full((2, n, n_kv, hd), float('nan'), device='cuda') if gather else None
            lib._call('rl_rope_kv_append', got[0], n_heads, got[1], v, got[2], got[3], table, n_kv, hd, bs, got[4], pos0, n, length, inv_freq,
                      staged)
            torch.cuda.synchronize()
            names, want = ['q', 'k', 'k_cache', 'v_cache', 'summary'], list(ref)
            if gather:
                names, want, got = names + ['staged'], want + [torch.stack((ref[1], v))], got + [staged]
            differ = [name for name, a, b in zip(names, want, got) if not torch.equal(a, b)]
            record(f'rope_kv_append h{n_heads}/{n_kv} d{hd} b{bs} pos0 {pos0} n{n} len {length}' + (' gathered' if gather else '') +
                   ' (tensors differing' + (': ' + ','.join(differ) if differ else '') + ')', float(len(differ)), 0.0)


def bench_decode_linear(lib, gen, bw):
    """1 token, bf16, Qwen2.5-Coder-1.5B's matrices: the old matvec, decode_linear (each split, each
    variant), torch's F.linear on bf16, the floor; weight copies rotated beyond L2."""
    rows_out = []
    for name, rows, cols in SHAPES:
        wbytes, copies, ws, x, x16, y = matvec_inputs(gen, rows, cols)
        r = dict(matrix=name, rows=rows, cols=cols, copies=copies, weight_bytes=wbytes, floor_s=wbytes / bw)
        r['old'] = A.time_graph([lambda w=w: lib._call('rl_matvec', x, 1, w, 2, rows, cols, None, y) for w in ws])
        configs = [(0, 0)] + [(s, 0) for s in (1, 2, 4, 8)] + [(0, 1), (0, 2)] + ([(0, 3)] if cols <= 12288 else [])
        for split, variant in configs:
            r[f'new s{split} v{variant}'] = A.time_graph(
                [decode_linear_call(lib, x, 1, cols, None, 0, torch.bfloat16, [(w, None, y, rows)], split, variant) for w in ws])
        r['torch'] = A.time_graph([lambda w=w: F.linear(x16, w) for w in ws])
        A.log(f'  {name:16s} old {r["old"]["median_s"] * 1e6:7.1f} us, ' +
              ', '.join(f'{k} {r[k]["median_s"] * 1e6:.1f}' for k in r if k.startswith('new')) +
              f', torch {r["torch"]["median_s"] * 1e6:.1f}, floor {wbytes / bw * 1e6:.1f} us')
        rows_out.append(r)
        del ws
        torch.cuda.empty_cache()
    return rows_out


def bench_decode_layer(lib, gen, bw, d=1536, f=8960, n_heads=12, n_kv=2, hd=128, bs=32, pos=8190):
    """One decoder layer of Qwen2.5-Coder-1.5B without its attention, 1 token, bf16 weights: the old
    launches (rmsnorm, q/k/v matvecs, 2 ropes, kv_append, key summary, o matvec, add, rmsnorm, gate, up,
    swiglu, down, add: 16) beside the fused ones (qkv+norm, rope+append+summary, o+add, norm+gate+up+swiglu,
    down+add: 5), over layer copies beyond L2; both run once from the same state first and compared."""
    rnd = lambda *s: torch.randn(*s, device='cuda', generator=gen)  # noqa: E731
    bf = lambda rows, cols: (rnd(rows, cols) / math.sqrt(cols)).to(torch.bfloat16)  # noqa: E731
    qd, kvd = n_heads * hd, n_kv * hd
    layer_bytes = 2 * (2 * qd * d + 2 * kvd * d + 3 * f * d)
    copies = max(2, math.ceil(400e6 / layer_bytes))
    layers = [dict(attn_norm=rnd(d), ffn_norm=rnd(d), q=bf(qd, d), k=bf(kvd, d), v=bf(kvd, d), bq=rnd(qd), bk=rnd(kvd), bv=rnd(kvd),
                   o=bf(d, qd), gate=bf(f, d), up=bf(f, d), down=bf(d, f)) for _ in range(copies)]
    n_logical = pos // bs + 1
    table = torch.arange(n_logical, device='cuda', dtype=torch.int32)
    inv_freq = (1.0 / (1e6 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))).float().cuda()

    def state():
        return dict(x=rnd(1, d), xb=torch.empty(1, d, device='cuda'), q=torch.empty(1, qd, device='cuda'),
                    kv=torch.empty(2, kvd, device='cuda'), att=rnd(1, qd), gate=torch.empty(1, f, device='cuda'),
                    up=torch.empty(1, f, device='cuda'), kc=torch.zeros(n_logical, n_kv, bs, hd, device='cuda'),
                    vc=torch.zeros(n_logical, n_kv, bs, hd, device='cuda'), summary=torch.zeros(n_logical, n_kv, 2, hd, device='cuda'))

    def old(L, s):
        lib._call('rl_rmsnorm', s['x'], L['attn_norm'], 0, 1, d, 1e-6, s['xb'])
        k, v = s['kv'][0:1], s['kv'][1:2]
        for w, b, y in ((L['q'], L['bq'], s['q']), (L['k'], L['bk'], k), (L['v'], L['bv'], v)):
            lib._call('rl_matvec', s['xb'], 1, w, 2, w.shape[0], d, b, y)
        lib._call('rl_rope', s['q'], 1, n_heads, hd, pos, inv_freq)
        lib._call('rl_rope', k, 1, n_kv, hd, pos, inv_freq)
        lib._call('rl_kv_append', s['kc'], s['vc'], table, n_kv, hd, bs, pos, 1, k, v)
        lib._call('rl_key_summary_append', s['summary'], table, n_kv, hd, bs, pos, 1, pos, k)
        lib._call('rl_matvec', s['att'], 1, L['o'], 2, d, qd, None, s['xb'])
        lib._call('rl_add', s['x'], s['xb'], d)
        lib._call('rl_rmsnorm', s['x'], L['ffn_norm'], 0, 1, d, 1e-6, s['xb'])
        lib._call('rl_matvec', s['xb'], 1, L['gate'], 2, f, d, None, s['gate'])
        lib._call('rl_matvec', s['xb'], 1, L['up'], 2, f, d, None, s['up'])
        lib._call('rl_swiglu', s['gate'], s['up'], f, s['gate'])
        lib._call('rl_matvec', s['gate'], 1, L['down'], 2, d, f, None, s['xb'])
        lib._call('rl_add', s['x'], s['xb'], d)

    def fused(L, s, variant=0):
        k, v = s['kv'][0:1], s['kv'][1:2]
        decode_linear_call(lib, s['x'], 1, d, L['attn_norm'], 0, torch.bfloat16,
                           [(L['q'], L['bq'], s['q'], qd), (L['k'], L['bk'], k, kvd), (L['v'], L['bv'], v, kvd)], 0, variant)()
        lib._call('rl_rope_kv_append', s['q'], n_heads, k, v, s['kc'], s['vc'], table, n_kv, hd, bs, s['summary'], pos, 1, pos, inv_freq, None)
        decode_linear_call(lib, s['att'], 1, qd, None, 1, torch.bfloat16, [(L['o'], None, s['x'], d)], 0, variant)()
        decode_linear_call(lib, s['x'], 1, d, L['ffn_norm'], 2, torch.bfloat16, [(L['gate'], None, s['gate'], f), (L['up'], None, None, f)],
                           0, variant)()
        decode_linear_call(lib, s['gate'], 1, f, None, 1, torch.bfloat16, [(L['down'], None, s['x'], d)], 0, variant)()

    s_old = state()
    s_new = {k: t.clone() for k, t in s_old.items()}
    old(layers[0], s_old)
    fused(layers[0], s_new)
    torch.cuda.synchronize()
    agree = dict(x=A.rel_err(s_new['x'], s_old['x'].double()), q=A.rel_err(s_new['q'], s_old['q'].double()),
                 k_cache=A.rel_err(s_new['kc'], s_old['kc'].double()), summary=A.rel_err(s_new['summary'], s_old['summary'].double()))
    s = state()
    r = dict(layer_bytes=layer_bytes, copies=copies, floor_s=layer_bytes / bw, fused_vs_old_rel=agree,
             old=A.time_graph([lambda L=L: old(L, s) for L in layers]), fused=A.time_graph([lambda L=L: fused(L, s) for L in layers]),
             fused_early=A.time_graph([lambda L=L: fused(L, s, 16) for L in layers]),
             fused_smem_x=A.time_graph([lambda L=L: fused(L, s, 3) for L in layers]))
    A.log(f'  layer without attention: old {r["old"]["median_s"] * 1e6:.1f} us (16 launches), fused {r["fused"]["median_s"] * 1e6:.1f} us '
          f'(5; early launch {r["fused_early"]["median_s"] * 1e6:.1f}, x in smem {r["fused_smem_x"]["median_s"] * 1e6:.1f}), floor {r["floor_s"] * 1e6:.1f} us; fused vs old: ' +
          ', '.join(f'{k} {v:.1e}' for k, v in agree.items()))
    r['kernels_fused'] = A.profile_kernels([lambda: fused(layers[0], s)])
    del layers
    torch.cuda.empty_cache()
    return r


def print_decode(rows, layer):
    A.log(f'{"decode bf16, 1 token":18s} {"old us":>7s} {"new us":>7s} ' + ' '.join(f'{k[4:]:>7s}' for k in rows[0] if k.startswith('new ')) +
          f' {"torch":>7s} {"floor":>7s} {"new/floor":>9s}')
    for r in rows:
        best = min(r[k]['median_s'] for k in r if k.startswith('new '))
        A.log(f'{r["matrix"][:18]:18s} {r["old"]["median_s"] * 1e6:7.1f} {r["new s0 v0"]["median_s"] * 1e6:7.1f} ' +
              ' '.join(f'{r[k]["median_s"] * 1e6:7.1f}' for k in r if k.startswith('new ')) +
              f' {r["torch"]["median_s"] * 1e6:7.1f} {r["floor_s"] * 1e6:7.1f} {r["new s0 v0"]["median_s"] / r["floor_s"]:9.2f}'
              f'  (best {best * 1e6:.1f})')
    if layer:
        A.log(f'{"layer w/o attention":18s} {layer["old"]["median_s"] * 1e6:7.1f} {layer["fused"]["median_s"] * 1e6:7.1f}'
              f'  early launch {layer["fused_early"]["median_s"] * 1e6:.1f}, floor {layer["floor_s"] * 1e6:.1f} us, '
              f'fused/floor {layer["fused"]["median_s"] / layer["floor_s"]:.2f}')


PREFILL_CHUNK = 1024  # queries at the end of the context


def bench_prefill(lib, gen, contexts=(8192, 32768, 131072), n_heads=12, n_kv=2, head_dim=128, block_size=32):
    """One layer's attention for a chunk of PREFILL_CHUNK queries at the end of each context
    (Qwen2.5-Coder-1.5B: 12 query heads, 2 KV heads, head dim 128): ours (float32 paged cache) beside
    PyTorch SDPA in bf16 (what transformers runs) and float32, GQA, causal aligned to the end
    (torch.nn.attention.bias.causal_lower_right: is_causal=True would align the chunk to the start)."""
    from torch.nn.attention.bias import causal_lower_right
    n = PREFILL_CHUNK
    rows_out = []
    for T in contexts:
        pos0 = T - n
        table, k_cache, v_cache, keys, values = paged_kv(gen, n_kv, head_dim, block_size, T)
        q = torch.randn(n, n_heads, head_dim, device='cuda', generator=gen)
        out = torch.empty_like(q)
        ours, ours_half = (A.time_graph([prefill_call(lib, table, k_cache, v_cache, n_kv, head_dim, block_size, pos0, n, n_heads,
                                                      q, out, code)], reps=10) for code in (0, 1))
        flops = 4.0 * n_heads * head_dim * (n * pos0 + n * (n + 1) / 2)  # q.k and p.v over the causal keys
        r = dict(context=T, chunk=n, n_heads=n_heads, n_kv=n_kv, head_dim=head_dim, flops=flops, ours=ours, ours_half=ours_half)
        for name, dt in (('sdpa_bf16', torch.bfloat16), ('sdpa_fp32', torch.float32)):
            qt = q.transpose(0, 1)[None].to(dt)  # [1][heads][n][hd]
            kt = keys.transpose(0, 1)[None].to(dt)
            vt = values.transpose(0, 1)[None].to(dt)
            mask = causal_lower_right(n, T)
            try:
                r[name] = A.time_graph([lambda: F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, enable_gqa=True)],
                                       reps=10)
            except (RuntimeError, ValueError) as e:  # no kernel for this dtype with GQA: heads repeated (not timed)
                kr, vr = kt.repeat_interleave(n_heads // n_kv, 1), vt.repeat_interleave(n_heads // n_kv, 1)
                r[name] = A.time_graph([lambda: F.scaled_dot_product_attention(qt, kr, vr, attn_mask=mask)], reps=10)
                r[name]['note'] = f'KV heads repeated: {str(e)[:120]}'
                del kr, vr
            del qt, kt, vt
        o, b16, b32 = r['ours']['median_s'], r['sdpa_bf16']['median_s'], r['sdpa_fp32']['median_s']
        oh = r['ours_half']['median_s']
        A.log(f'  context {T:6d}: ours {o * 1e3:8.3f} ms ({flops / o / 1e12:5.1f} TFLOP/s), '
              f'half {oh * 1e3:8.3f} ms ({flops / oh / 1e12:5.1f}), sdpa bf16 {b16 * 1e3:8.3f} ms ({flops / b16 / 1e12:5.1f}), sdpa fp32 {b32 * 1e3:8.3f} ms ({flops / b32 / 1e12:5.1f})')
        rows_out.append(r)
        del table, k_cache, v_cache, keys, values, q, out
        torch.cuda.empty_cache()
    return rows_out


def print_prefill(rows):
    A.log(f'{"prefill attn, 1 layer":22s} {"ours ms":>8s} {"tok/s":>9s} {"half ms":>8s} {"bf16 ms":>8s} {"tok/s":>9s} '
          f'{"ours/bf16":>9s} {"half/bf16":>9s} {"fp32 ms":>8s} {"ours/fp32":>9s}')
    for r in rows:
        o, b16, b32 = r['ours']['median_s'], r['sdpa_bf16']['median_s'], r['sdpa_fp32']['median_s']
        oh = r['ours_half']['median_s']
        A.log(f'{"ctx " + str(r["context"]) + ", " + str(r["chunk"]) + " q":22s} {o * 1e3:8.3f} {r["chunk"] / o:9.0f} '
              f'{oh * 1e3:8.3f} {b16 * 1e3:8.3f} {r["chunk"] / b16:9.0f} {o / b16:9.2f} {oh / b16:9.2f} {b32 * 1e3:8.3f} {o / b32:9.2f}')


def check_ops(lib, gen):
    results, ok = [], True

    def record(name, err, tol):
        nonlocal ok
        passed = err <= tol
        ok &= passed
        results.append(dict(op=name, rel_err=err, tol=tol, ok=passed))
        A.log(f'  {name:34s} rel err {err:.2e} (tol {tol:.0e}) {"ok" if passed else "FAIL"}')

    def nan(*shape):
        return torch.full(shape, float('nan'), device='cuda')

    for dt in (torch.float32, torch.float16, torch.bfloat16):
        tn = str(dt).split('.')[-1]
        # embedding
        vocab, dim = 1000, 264
        table = torch.randn(vocab, dim, device='cuda', generator=gen).to(dt)
        tokens = torch.randint(0, vocab, (7,), device='cuda', generator=gen, dtype=torch.int32)
        out = nan(7, dim)
        lib._call('rl_embed', table, TYPES[dt], dim, tokens, 7, out)
        torch.cuda.synchronize()
        record(f'embed {tn}', A.rel_err(out, table[tokens.long()].double()), 0.0)
        # rmsnorm
        n, dim = 5, 1536
        x = torch.randn(n, dim, device='cuda', generator=gen) * 3
        w = torch.randn(dim, device='cuda', generator=gen).to(dt)
        out = nan(n, dim)
        lib._call('rl_rmsnorm', x, w, TYPES[dt], n, dim, 1e-6, out)
        torch.cuda.synchronize()
        xd = x.double()
        ref = xd / torch.sqrt((xd * xd).mean(1, keepdim=True) + 1e-6) * w.double()
        record(f'rmsnorm {tn}', A.rel_err(out, ref), 1e-5)
        # matvec with and without bias, several token counts and ragged shapes
        check_linear(lib, gen, record, nan, 'rl_matvec', dt, ((1, 1536, 1536, False), (1, 256, 1536, True),
                                                              (3, 8960, 1536, False), (5, 1536, 8960, True), (1, 37, 24, True)))
        # matvec_any: any cols (stories260K's down projection is 64x172), prefill-sized n
        check_linear(lib, gen, record, nan, 'rl_matvec_any', dt, ((1, 64, 172, False), (64, 172, 64, True), (5, 301, 37, True)))
    check_gemm(lib, gen, record, nan)
    check_prefill(lib, gen, record, nan)
    check_dense_decode([('', lib)], gen, record, nan)
    check_chosen([('', lib)], gen, record, nan)
    check_decode_linear(lib, gen, record, nan)
    check_rope_kv_append(lib, gen, record)
    # rope (float32 activations; inv_freq as the CPU computes it, here the default theta)
    for n, heads, head_dim, pos0 in ((3, 12, 128, 0), (2, 2, 128, 131069), (4, 8, 64, 5000)):
        x = torch.randn(n, heads, head_dim, device='cuda', generator=gen)
        inv_freq = (1.0 / (1e6 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))).float().cuda()
        y = x.clone()
        lib._call('rl_rope', y, n, heads, head_dim, pos0, inv_freq)
        torch.cuda.synchronize()
        pos = torch.arange(pos0, pos0 + n, device='cuda', dtype=torch.float32)
        angle = (pos[:, None] * inv_freq[None, :]).double()  # float32 product, as transformers
        c, s = torch.cos(angle)[:, None, :], torch.sin(angle)[:, None, :]
        a, b = x[..., :head_dim // 2].double(), x[..., head_dim // 2:].double()
        ref = torch.cat([a * c - b * s, b * c + a * s], -1)
        record(f'rope n{n} h{heads} d{head_dim} pos0 {pos0}', A.rel_err(y, ref), 1e-5)
    # KV append + float32 causal attention over a paged cache (shuffled block table, unwritten
    # slots NaN): a prefill of n tokens after pos0 cached ones, GQA
    for n_heads, n_kv, head_dim, block_size, pos0, n in ((8, 4, 8, 16, 0, 69), (4, 1, 16, 16, 37, 1),
                                                         (32, 8, 128, 32, 1000, 7), (12, 2, 128, 32, 300, 64),
                                                         (12, 2, 128, 32, 8190, 1), (32, 8, 128, 16, 5000, 2)):
        length = pos0 + n
        n_logical = (length + block_size - 1) // block_size
        n_phys = n_logical + 3
        table = torch.randperm(n_phys, device='cuda', generator=gen)[:n_logical].to(torch.int32)
        k_cache = nan(n_phys, n_kv, block_size, head_dim)
        v_cache = nan(n_phys, n_kv, block_size, head_dim)
        keys = torch.randn(length, n_kv, head_dim, device='cuda', generator=gen)
        values = torch.randn(length, n_kv, head_dim, device='cuda', generator=gen)
        lib._call('rl_kv_append', k_cache, v_cache, table, n_kv, head_dim, block_size, 0, length, keys, values)
        torch.cuda.synchronize()
        pos = torch.arange(length, device='cuda')
        stored_k = k_cache[table.long()[pos // block_size], :, pos % block_size]  # [length][n_kv][hd]
        record(f'kv_append kv{n_kv} d{head_dim} len{length}', A.rel_err(stored_k, keys.double()) +
               A.rel_err(v_cache[table.long()[pos // block_size], :, pos % block_size], values.double()), 0.0)
        q = torch.randn(n, n_heads, head_dim, device='cuda', generator=gen)
        out = nan(n, n_heads, head_dim)
        scale = head_dim ** -0.5
        lib.so.rl_dense_attention_f32_workspace_floats.restype = ctypes.c_size_t
        ws_floats = lib.so.rl_dense_attention_f32_workspace_floats(n, n_heads, head_dim, pos0)
        ws = torch.empty(max(ws_floats, 1), device='cuda') if ws_floats else None
        lib._call('rl_dense_attention_f32', k_cache, v_cache, table, n_kv, head_dim, block_size, pos0, n, n_heads,
                  float(scale), q, out, ws)
        torch.cuda.synchronize()
        kd = keys.double().repeat_interleave(n_heads // n_kv, 1)  # [length][heads][hd]
        vd = values.double().repeat_interleave(n_heads // n_kv, 1)
        scores = torch.einsum('thd,shd->hts', q.double(), kd) * scale  # [heads][n][length]
        causal = torch.arange(length, device='cuda')[None, :] <= (pos0 + torch.arange(n, device='cuda'))[:, None]
        probs = torch.softmax(scores.masked_fill(~causal, float('-inf')), -1)
        ref = torch.einsum('hts,shd->thd', probs, vd)
        record(f'dense_attention f32 h{n_heads}/{n_kv} d{head_dim} pos0 {pos0} n{n}' + (' split' if ws_floats else ''),
               A.rel_err(out, ref), 1e-5)
        if n == 1:
            # chosen_attention (sparse decode in the engine): per KV head, a random half of the
            # blocks plus the partial tail block, folded into a NaN-poisoned state in two calls
            # (fresh, then added), against float64 softmax and log-sum-exp over those positions.
            group = n_heads // n_kv
            for h in range(n_kv):
                chosen = torch.randperm(n_logical - 1, device='cuda', generator=gen)[:(n_logical - 1) // 2]
                chosen = torch.cat([chosen, torch.tensor([n_logical - 1], device='cuda')]).to(torch.int32)
                half = max(1, chosen.numel() // 2)
                state = nan(group, head_dim + 2)
                lib._call('rl_chosen_attention_add', k_cache, v_cache, table, n_kv, head_dim, block_size, h, length,
                          chosen[:half].contiguous(), half, h * group, group, float(scale), q, 1, state)
                rest = chosen[half:].contiguous()
                lib._call('rl_chosen_attention_add', k_cache, v_cache, table, n_kv, head_dim, block_size, h, length,
                          rest, rest.numel(), h * group, group, float(scale), q, 0, state)
                out_h = nan(group, head_dim)
                lib._call('rl_chosen_attention_write', state, group, head_dim, out_h)
                torch.cuda.synchronize()
                positions = (chosen.long()[:, None] * block_size + torch.arange(block_size, device='cuda')[None, :]).flatten()
                positions = positions[positions < length]
                s = torch.einsum('gd,pd->gp', q[0, h * group:(h + 1) * group].double(), keys[positions, h].double()) * scale
                ref_out = torch.softmax(s, -1) @ values[positions, h].double()
                ref_lse = torch.logsumexp(s, -1)
                lse = state[:, head_dim].double() + torch.log(state[:, head_dim + 1].double())
                name = f'chosen_attention h{n_heads}/{n_kv} d{head_dim} kv{h} {chosen.numel()}/{n_logical} blocks'
                record(name, A.rel_err(out_h, ref_out), 1e-5)
                record(name + ' lse (abs)', (lse - ref_lse).abs().max().item(), 1e-5)
    # swiglu, add
    count = 8960 * 3 + 5
    g = torch.randn(count, device='cuda', generator=gen) * 4
    u = torch.randn(count, device='cuda', generator=gen)
    out = nan(count)
    lib._call('rl_swiglu', g, u, count, out)
    torch.cuda.synchronize()
    gd = g.double()
    record('swiglu', A.rel_err(out, gd / (1 + torch.exp(-gd)) * u.double()), 1e-5)
    x = torch.randn(count, device='cuda', generator=gen)
    ref = x.double() + u.double()
    lib._call('rl_add', x, u, count)
    torch.cuda.synchronize()
    record('add', A.rel_err(x, ref), 1e-7)
    return ok, results


# Qwen2.5-Coder-1.5B decode matrices (rows x cols): q, k/v, o, gate/up, down, lm_head
SHAPES = [('q_proj / o_proj', 1536, 1536), ('k_proj / v_proj', 256, 1536), ('gate / up', 8960, 1536),
          ('down', 1536, 8960), ('lm_head', 151936, 1536)]


def matvec_inputs(gen, rows, cols):
    """1-token timing inputs: bf16 weight copies rotated beyond L2 (400 MB together), x, x in bf16, y."""
    wbytes = rows * cols * 2
    copies = max(2, math.ceil(400e6 / wbytes))
    ws = [torch.randn(rows, cols, device='cuda', generator=gen).to(torch.bfloat16) for _ in range(copies)]
    x = torch.randn(1, cols, device='cuda', generator=gen)
    return wbytes, copies, ws, x, x.to(torch.bfloat16), torch.empty(1, rows, device='cuda')


def bench_matvec(lib, gen, bw):
    rows_out = []
    for name, rows, cols in SHAPES:
        wbytes, copies, ws, x, x16, y = matvec_inputs(gen, rows, cols)
        ours = A.time_graph([lambda w=w: lib._call('rl_matvec', x, 1, w, 2, rows, cols, None, y) for w in ws])
        torch_t = A.time_graph([lambda w=w: F.linear(x16, w) for w in ws])
        ours2 = A.time_graph([lambda w=w: lib._call('rl_matvec', x, 1, w, 2, rows, cols, None, y) for w in ws])
        r = dict(matrix=name, rows=rows, cols=cols, copies=copies, weight_bytes=wbytes, ours=ours, ours_again=ours2,
                 torch_linear_bf16=torch_t, floor_s=wbytes / bw)
        A.log(f'  {name:16s} n{n:5d} ours {ours["median_s"] * 1e6:7.1f} us (again {ours2["median_s"] * 1e6:.1f}), '
              f'torch {torch_t["median_s"] * 1e6:7.1f} us, floor {wbytes / bw * 1e6:6.1f} us')
        rows_out.append(r)
        del ws
        torch.cuda.empty_cache()
    return rows_out


GEMM_TOKENS = (1024, 2048)  # the CUDA backend's prefill chunk (2048; 1024 before session 16), and half that


def bench_gemm(lib, gen):
    """Prefill products at Qwen2.5-Coder-1.5B's shapes (bf16 weights, float32 x for ours, bf16 x for
    torch's F.linear: cuBLAS, what transformers runs), as TFLOP/s; the Half GEMM through cuBLASLt
    beside (x rounded in a workspace, then cuBLASLt's product) when it loads; the decode matvec once."""
    version = cublaslt_version(lib)
    rows_out = []
    for n, (name, rows, cols) in ((n, shape) for n in GEMM_TOKENS for shape in SHAPES[:4]):
        flops = 2.0 * n * rows * cols
        copies = max(2, min(8, math.ceil(100e6 / (rows * cols * 2))))
        ws = [torch.randn(rows, cols, device='cuda', generator=gen).to(torch.bfloat16) for _ in range(copies)]
        x = torch.randn(n, cols, device='cuda', generator=gen)
        x16 = x.to(torch.bfloat16)
        y = torch.empty(n, rows, device='cuda')
        ours = A.time_graph([lambda w=w: lib._call('rl_gemm', x, n, w, 2, rows, cols, None, y, 0) for w in ws])
        torch_t = A.time_graph([lambda w=w: F.linear(x16, w) for w in ws])
        ours2 = A.time_graph([lambda w=w: lib._call('rl_gemm', x, n, w, 2, rows, cols, None, y, 0) for w in ws])
        half = A.time_graph([lambda w=w: lib._call('rl_gemm', x, n, w, 2, rows, cols, None, y, 1) for w in ws])
        matvec = A.time_graph([lambda: lib._call('rl_matvec', x, n, ws[0], 2, rows, cols, None, y)], reps=3)
        r = dict(matrix=name, tokens=n, rows=rows, cols=cols, copies=copies, flops=flops, ours=ours, ours_again=ours2,
                 ours_half=half, torch_linear_bf16=torch_t, matvec=matvec, cublaslt_version=version)
        if version:
            work = gemm_workspace(lib, GEMM_CUBLASLT, n, cols, 1)
            r['cublaslt_half'] = A.time_graph([lambda w=w: lib._call('rl_gemm_lib', x, n, w, 2, rows, cols, None, y, 1, GEMM_CUBLASLT, work)
                                               for w in ws])
            A.log(f'  {name:16s} n{n:5d} cublaslt half {r["cublaslt_half"]["median_s"] * 1e6:8.1f} us '
                  f'({flops / r["cublaslt_half"]["median_s"] / 1e12:6.1f} TFLOP/s)')
        A.log(f'  {name:16s} n{n:5d} ours {ours["median_s"] * 1e6:8.1f} us ({flops / ours["median_s"] / 1e12:6.1f} TFLOP/s, again '
              f'{ours2["median_s"] * 1e6:.1f}; half {half["median_s"] * 1e6:.1f} us, '
              f'{flops / half["median_s"] / 1e12:.1f} TFLOP/s), torch {torch_t["median_s"] * 1e6:8.1f} us '
              f'({flops / torch_t["median_s"] / 1e12:6.1f} TFLOP/s), matvec {matvec["median_s"] * 1e6:9.1f} us')
        rows_out.append(r)
        del ws
        torch.cuda.empty_cache()
    return rows_out


def print_gemm(rows):
    A.log(f'{"gemm bf16, tokens":22s} {"ours us":>8s} {"TFLOP/s":>8s} {"half us":>8s} {"TFLOP/s":>8s} {"torch us":>9s} '
          f'{"TFLOP/s":>8s} {"ours/torch":>10s} {"half/torch":>10s} {"matvec us":>10s} {"lt half":>8s} {"lth/torch":>9s}')
    for r in rows:
        o, t, h = r['ours']['median_s'], r['torch_linear_bf16']['median_s'], r['ours_half']['median_s']
        lt = ''
        if 'cublaslt_half' in r:
            ch = r['cublaslt_half']['median_s']
            lt = f' {ch * 1e6:8.1f} {ch / t:9.2f}'
        A.log(f'{(r["matrix"][:15] + " " + str(r["tokens"])):22s} {o * 1e6:8.1f} {r["flops"] / o / 1e12:8.1f} {h * 1e6:8.1f} {r["flops"] / h / 1e12:8.1f} '
              f'{t * 1e6:9.1f} {r["flops"] / t / 1e12:8.1f} {o / t:10.2f} {h / t:10.2f} {r["matvec"]["median_s"] * 1e6:10.1f}{lt}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--lib', default=None)
    ap.add_argument('--out', default=None)
    ap.add_argument('--checks-only', action='store_true', help='check every op (with --dense: those), time nothing')
    ap.add_argument('--gemm', action='store_true', help='check and time the prefill GEMM only')
    ap.add_argument('--prefill', action='store_true', help='check and time the prefill attention only')
    ap.add_argument('--dense', action='store_true', help='check and time the dense decode attention only')
    ap.add_argument('--chosen', action='store_true', help='check and time the attention over chosen blocks only')
    ap.add_argument('--decode', action='store_true', help='check and time the fused decode products and rope_kv_append only')
    ap.add_argument('--compare', action='append', default=[], metavar='LABEL=LIB',
                    help='with --dense or --chosen: another build of the library (a variant) checked and timed beside')
    ap.add_argument('--max-context', type=int, default=None, help='with --dense: check only cases up to this many positions')
    args = ap.parse_args()
    lib = A.Lib(args.lib or A.build_library(os.path.join(A.ROOT, 'native', 'build', 'librl_cuda_bench.so')))
    dev = torch.cuda.get_device_properties(0)
    A.log(f'device: {dev.name}, torch {torch.__version__}')
    gen = torch.Generator(device='cuda')
    gen.manual_seed(int(time.time()))
    if args.gemm or args.prefill or args.dense or args.chosen or args.decode:
        checks, ok = [], True

        def record(name, err, tol):
            nonlocal ok
            ok &= err <= tol
            checks.append(dict(op=name, rel_err=err, tol=tol, ok=err <= tol))
            A.log(f'  {name:34s} rel err {err:.2e} (tol {tol:.0e}) {"ok" if err <= tol else "FAIL"}')

        nan = lambda *shape: torch.full(shape, float('nan'), device='cuda')  # noqa: E731
        extra = {}
        libs = [('', lib)] + [(' ' + c.split('=', 1)[0], A.Lib(c.split('=', 1)[1])) for c in args.compare]
        if args.decode:
            check_decode_linear(lib, gen, record, nan)
            check_rope_kv_append(lib, gen, record)
            rows, extra, show = [], {}, lambda rows: None  # noqa: E731
            if not args.checks_only:
                bw = A.copy_bandwidth()
                A.log(f'copy bandwidth (read + write): {bw / 1e12:.2f} TB/s')
                rows = bench_decode_linear(lib, gen, bw)
                layer = bench_decode_layer(lib, gen, bw)
                extra.update(copy_bandwidth_Bps=bw, decode_linear=rows, decode_layer=layer)
                show = lambda rows: print_decode(rows, layer)  # noqa: E731
        elif args.chosen:
            check_chosen(libs, gen, record, nan)
            rows, extra, show = [], dict(compare=args.compare), lambda rows: None  # noqa: E731
            if not args.checks_only:
                bw = A.copy_bandwidth()
                A.log(f'copy bandwidth (read + write): {bw / 1e12:.2f} TB/s')
                rows = bench_chosen(libs, gen, bw)
                extra.update(copy_bandwidth_Bps=bw, chosen_attention=rows)
                show = lambda rows: print_chosen(rows, [label for label, _ in libs])  # noqa: E731
        elif args.dense:
            check_dense_decode(libs, gen, record, nan, args.max_context)
            rows, extra, show = [], dict(compare=args.compare), lambda rows: None  # noqa: E731
            if not args.checks_only:
                bw = A.copy_bandwidth()
                A.log(f'copy bandwidth (read + write): {bw / 1e12:.2f} TB/s')
                rows = bench_dense_decode(libs, gen, bw)
                extra.update(copy_bandwidth_Bps=bw, dense_decode=rows)
                show = lambda rows: print_dense_decode(rows, [label for label, _ in libs])  # noqa: E731
        elif args.gemm:
            check_gemm(lib, gen, record, nan)
            rows = [] if args.checks_only else bench_gemm(lib, gen)
            extra, show = dict(gemm=rows), print_gemm
        else:
            check_prefill(lib, gen, record, nan)
            rows = [] if args.checks_only else bench_prefill(lib, gen)
            extra, show = dict(prefill_attention=rows), print_prefill
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(dict(device=dev.name, date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                               torch=torch.__version__, command=' '.join(sys.argv),
                               commit=os.environ.get('REPO_LENS_COMMIT', ''), checks=checks, checks_ok=bool(ok), **extra),
                          f, indent=1)
        A.log('\nchecks: ' + ('all passed' if ok else 'FAILED'))
        show(rows)
        sys.exit(0 if ok else 1)
    ok, checks = check_ops(lib, gen)
    if args.checks_only:
        A.log('\nchecks: ' + ('all passed' if ok else 'FAILED'))
        sys.exit(0 if ok else 1)
    bw = A.copy_bandwidth()
    A.log(f'copy bandwidth (read + write): {bw / 1e12:.2f} TB/s')
    rows = bench_matvec(lib, gen, bw)
    gemm_rows = bench_gemm(lib, gen)
    prefill_rows = bench_prefill(lib, gen)
    report = dict(device=dev.name, date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
                  torch=torch.__version__, command=' '.join(sys.argv), commit=os.environ.get('REPO_LENS_COMMIT', ''),
                  checks=checks, checks_ok=bool(ok), copy_bandwidth_Bps=bw, matvec=rows, gemm=gemm_rows,
                  prefill_attention=prefill_rows)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    A.log('\nchecks: ' + ('all passed' if ok else 'FAILED'))
    A.log(f'{"matvec bf16, 1 token":22s} {"ours us":>8s} {"torch us":>9s} {"ours/torch":>10s} {"floor us":>9s} {"ours/floor":>10s}')
    for r in rows:
        o, t = r['ours']['median_s'] * 1e6, r['torch_linear_bf16']['median_s'] * 1e6
        A.log(f'{r["matrix"][:22]:22s} {o:8.1f} {t:9.1f} {o / t:10.2f} {r["floor_s"] * 1e6:9.1f} '
              f'{o / (r["floor_s"] * 1e6):10.2f}')
    print_gemm(gemm_rows)
    print_prefill(prefill_rows)
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
