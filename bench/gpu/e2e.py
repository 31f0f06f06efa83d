#!/usr/bin/env python3
"""End to end on one CUDA GPU, batch 1: a random-weight model with Qwen2.5-Coder-1.5B's shape in bf16
(bench/gpu/random_model.py), for each context, beside each other in one run:
  transformers   Qwen2ForCausalLM (sdpa) with the same weights: prefill of CONTEXT tokens, then greedy
                 decode with its KV cache (bf16); peak = torch.cuda.max_memory_allocated
  ours dense     the CUDA engine (bench/gpu/forward_check --time): prefill, dense decode (float32 KV)
  ours PrHS      the same prefix, decode with PrHS at --budget (the policy decides on the host; block bounds and attention on the GPU)
  ours half      the prefill again with 16-bit operands (PrefillPrecision::Half, as transformers' bf16; unless --no-half-prefill)
Each decode time is the median of --steps greedy steps, each one's floor = the bytes it must read per
token / the device-to-device copy rate measured here (see FLOORS). Our engine's prefill is given up
with an estimate when it would not fit the time left (--time-limit covers the whole run).
The table is printed last; --out writes the JSON (device, date, commit, every number).
  python3 bench/gpu/e2e.py [--contexts 32768,131072] [--steps 16] [--budget 0.05] [--time-limit 540]
                           [--forward-check BIN] [--model-dir DIR] [--out FILE]
Run from the repository root; needs nvcc (to build forward_check), PyTorch with CUDA and transformers.
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import subprocess
import sys
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers.integrations import sdpa_attention

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attention  # noqa: E402  (copy_bandwidth: the same measured copy rate as the other GPU benchmarks)
import random_model  # noqa: E402

FLOORS = ('floor = bytes read per decoded token / measured device-to-device copy rate (read + write per second). '
          'transformers: bf16 weights + bf16 K/V of the context. ours dense: bf16 weights + float32 K/V (our KV cache '
          'is float32). ours PrHS: bf16 weights + budget x float32 K/V + the float32 key min/max summaries of every '
          'block (what scoring reads; the GPU reads them and the chosen K/V). bf16 floor: the same counts with '
          'bf16 K/V and summaries (the issue\'s floors: ~2.3 ms dense, ~1.1 ms at 5% for 128K on an H100).')
STEP_GUESS_S = 0.25     # a decode step, before any was measured (for the time left)
PROCESS_OVERHEAD_S = 20  # forward_check: load 3 GB of weights, copy-rate test, warm-up


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--contexts', default='32768,131072', help='comma-separated context lengths (8192 for a quick run)')
    p.add_argument('--steps', type=int, default=16, help='greedy decode steps timed per engine (median)')
    p.add_argument('--budget', type=float, default=0.05, help='PrHS budget: fraction of the context read per step')
    p.add_argument('--time-limit', type=float, default=540, help='seconds for the whole run; rows that would not fit are skipped')
    p.add_argument('--decode-limit', type=float, default=20, help='seconds for each of our decode modes (3 steps at least)')
    p.add_argument('--forward-check', help='a built forward_check (default: build it with bench/gpu/build_forward_check.sh)')
    p.add_argument('--model-dir', default=os.path.join(os.environ.get('TMPDIR', '/tmp'), 'repo-lens-e2e-model'))
    p.add_argument('--no-half-prefill', action='store_true',
                   help='skip the second prefill of ours with 16-bit operands (PrefillPrecision::Half, dense decode 3 steps)')
    p.add_argument('--commit', help='commit to record (default: git rev-parse HEAD)')
    p.add_argument('--out', help='write the results as JSON here')
    p.add_argument('--transformers-row', type=int, help=argparse.SUPPRESS)  # the child process of run_transformers
    p.add_argument('--way', type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument('--limit', type=float, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.contexts = sorted(int(c) for c in args.contexts.split(','))
    return args


def log(msg):
    print(f'e2e: {msg}', file=sys.stderr, flush=True)


def random_ids(n, vocab):
    """The ids forward_check --time prefills (the same LCG, seed 12345)."""
    ids, state = [], 12345
    for _ in range(n):
        state = (state * 1664525 + 1013904223) % 2**32
        ids.append(state % vocab)
    return ids


def ensure_model(model_dir):
    spec = os.path.join(model_dir, random_model.SPEC_NAME)
    weights = os.path.join(model_dir, 'weights.bin')
    if os.path.exists(spec) and os.path.exists(weights) and os.path.getsize(weights) == random_model.file_bytes(random_model.QWEN_1_5B):
        log(f'model: {spec} (kept from an earlier run)')
        return spec
    t0 = time.time()
    spec = random_model.write_model(model_dir)
    log(f'model: wrote {spec} in {time.time() - t0:.1f} s')
    return spec


def build_forward_check():
    """Builds it for this GPU's architecture (build_forward_check.sh alone builds sm_90a)."""
    t0 = time.time()
    major, minor = torch.cuda.get_device_capability(0)
    arch = f'{major}{minor}' + ('a' if (major, minor) == (9, 0) else '')  # 90a: with wgmma
    env = dict(os.environ, REPO_LENS_CUDA_ARCHS=os.environ.get('REPO_LENS_CUDA_ARCHS', arch))
    out = subprocess.run(['sh', 'bench/gpu/build_forward_check.sh'], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f'e2e: building forward_check failed:\n{out.stdout}\n{out.stderr}')
    binary = out.stdout.strip().splitlines()[-1]
    log(f'built {binary} in {time.time() - t0:.0f} s')
    return binary


# ---- transformers ---------------------------------------------------------------------------------

def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


@contextlib.contextmanager
def kv_heads_repeated():
    """transformers' sdpa path with K/V heads repeated (repeat_kv) instead of enable_gqa=True."""
    saved = sdpa_attention.use_gqa_in_sdpa
    sdpa_attention.use_gqa_in_sdpa = lambda *args: False
    try:
        yield
    finally:
        sdpa_attention.use_gqa_in_sdpa = saved


# How transformers' prefill is run, in the order tried (each in a fresh process, see run_transformers):
# (chunk or None for the whole prompt, K/V heads repeated, name). PyTorch's math kernel is never allowed
# (at 32K it would materialize 12 x 32K x 32K scores), so a refused attempt fails at once.
PREFILL_WAYS = [(None, False, 'one forward'), (None, True, 'one forward, K/V heads repeated'),
                (8192, True, 'chunks of 8192, K/V heads repeated')]


def transformers_prefill(model, ids, device, way):
    """(seconds, logits of the last position, cache) of a prefill run the way PREFILL_WAYS[way] says."""
    from transformers import DynamicCache
    chunk, repeat, _ = PREFILL_WAYS[way]
    chunk = chunk or len(ids)
    x = torch.tensor([ids], device=device)
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    cache = DynamicCache(config=model.config)
    sync(device)
    t0 = time.perf_counter()
    with sdpa_kernel(fused), (kv_heads_repeated() if repeat else contextlib.nullcontext()):
        for start in range(0, len(ids), chunk):
            out = model(input_ids=x[:, start:start + chunk], past_key_values=cache, use_cache=True, logits_to_keep=1)
    sync(device)
    return time.perf_counter() - t0, out.logits[0, -1], cache


def transformers_decode(model, first_logits, cache, steps, device):
    """Seconds of each greedy step (logits to the next id included) and the ids fed."""
    ids, times = [], []
    nxt = int(first_logits.argmax())
    for _ in range(steps):
        ids.append(nxt)
        x = torch.tensor([[nxt]], device=device)
        sync(device)
        t0 = time.perf_counter()
        out = model(input_ids=x, past_key_values=cache, use_cache=True)
        nxt = int(out.logits[0, -1].argmax())  # waits for the step
        times.append(time.perf_counter() - t0)
    return times, ids


@torch.inference_mode()  # without it every layer's activations are kept for a backward pass: 75 GB at 32K
def transformers_row(model, shape, context, steps, device, limit_s, way):
    """One row; after a warm-up its prefill time is projected from prefills of 2048 and 4096 tokens (fit by
    a·P + b·P², a and b >= 0) and the row skipped when that passes limit_s."""
    ids = random_ids(context, shape['vocab'])
    transformers_prefill(model, ids[:256], device, way)  # warm-up: kernels, cuBLAS
    p1, p2 = min(2048, context), min(4096, context)
    t1, t2 = (transformers_prefill(model, ids[:p], device, way)[0] for p in (p1, p2))
    b = max(0.0, (t2 * p1 - t1 * p2) / (p2 * p2 * p1 - p1 * p1 * p2)) if p2 > p1 else 0.0
    a = max(0.0, (t2 - b * p2 * p2) / p2)
    projected = a * context + b * context * context
    if projected > limit_s:
        return {'engine': 'transformers', 'context': context, 'skipped': True,
                'reason': f'prefill would take ~{projected:.0f} s ({p1} tokens took {t1:.2f} s, {p2} {t2:.2f} s; limit {limit_s:.0f} s)'}
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    prefill_s, last, cache = transformers_prefill(model, ids, device, way)
    times, greedy = transformers_decode(model, last, cache, steps, device)
    peak = torch.cuda.max_memory_allocated() if device.type == 'cuda' else 0
    mean_ms = sum(times) / len(times) * 1e3
    times.sort()
    return {'engine': 'transformers', 'context': context, 'skipped': False, 'prefill_s': prefill_s,
            'prefill_tokens_per_s': context / prefill_s, 'prefill_how': PREFILL_WAYS[way][2],
            'decode_median_ms': times[len(times) // 2] * 1e3, 'decode_mean_ms': mean_ms, 'decode_min_ms': times[0] * 1e3,
            'peak_bytes': peak, 'peak_how': 'torch.cuda.max_memory_allocated', 'greedy_ids': greedy}


def transformers_child(args):
    """The --transformers-row process: one row, one prefill way, one JSON line on stdout."""
    try:
        device = torch.device('cuda')
        spec = os.path.join(args.model_dir, random_model.SPEC_NAME)
        model = random_model.transformers_model(spec, random_model.QWEN_1_5B, torch.bfloat16, 'sdpa', device)
        row = transformers_row(model, random_model.QWEN_1_5B, args.transformers_row, args.steps, device, args.limit, args.way)
    except Exception as e:  # noqa: BLE001 (reported to the parent, which tries the next way)
        row = {'error': f'{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ""}'}
    print(json.dumps(row), flush=True)


def run_transformers(args, context, limit_s):
    """transformers' row at `context`, each prefill way in a fresh process (memory a failed way held is
    given back with it) until one works."""
    refused = []
    env = dict(os.environ, PYTORCH_CUDA_ALLOC_CONF='expandable_segments:True')
    for way, (_, _, how) in enumerate(PREFILL_WAYS):
        cmd = [sys.executable, os.path.abspath(__file__), '--transformers-row', str(context), '--way', str(way), '--limit', f'{limit_s:.0f}',
               '--steps', str(args.steps), '--model-dir', args.model_dir]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=limit_s + 120)
            lines = [l for l in out.stdout.splitlines() if l.startswith('{')]
            row = json.loads(lines[-1]) if lines else {'error': f'exit {out.returncode}: {out.stderr.strip()[-300:]}'}
        except (subprocess.TimeoutExpired, json.JSONDecodeError) as e:
            row = {'error': str(e)[:300]}
        if 'error' not in row:
            if refused and not row['skipped']:
                row['prefill_how'] += f' (failed before: {"; ".join(refused)})'
            return row
        refused.append(f'{how}: {row["error"]}')
        log(f'transformers at {context}, {how}: {row["error"]}')
    return {'engine': 'transformers', 'context': context, 'skipped': True, 'reason': 'every prefill way failed: ' + '; '.join(refused)}


# ---- our engine -----------------------------------------------------------------------------------

def run_ours(binary, spec, context, steps, budget, prefill_limit_s, decode_limit_s, prhs_expand, prefill_precision='float32'):
    cmd = [binary, '--time', spec, str(context), str(steps), '--budget', str(budget), '--prefill-limit', f'{prefill_limit_s:.0f}',
           '--decode-limit', f'{decode_limit_s:.0f}', '--prhs-expand', '1' if prhs_expand else '0',
           '--prefill-precision', prefill_precision]
    log(' '.join(cmd))
    timeout = prefill_limit_s + PROCESS_OVERHEAD_S + 3 * decode_limit_s + 120  # a mode may pass its limit by a few steps
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'error': f'forward_check ran past {timeout:.0f} s and was stopped'}
    lines = [l for l in out.stdout.splitlines() if l.startswith('{')]
    if out.returncode != 0 or not lines:
        return {'error': f'forward_check exit {out.returncode}: {out.stderr.strip()[-500:]}'}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as e:
        return {'error': f'forward_check printed a line that is not JSON ({e}): {lines[-1][:300]}'}


# ---- floors, rows, table --------------------------------------------------------------------------

def kv_bytes(shape, context, element_bytes):
    return context * shape['layers'] * shape['kv_heads'] * shape['head_dim'] * 2 * element_bytes


def summary_bytes(shape, context, element_bytes, block_size=32):
    """Key min and max per block, KV head and layer."""
    return math.ceil(context / block_size) * shape['layers'] * shape['kv_heads'] * 2 * shape['head_dim'] * element_bytes


def floors_ms(shape, weight_bytes, context, budget, bandwidth):
    ms = lambda b: b / bandwidth * 1e3  # noqa: E731
    return {
        'transformers': ms(weight_bytes + kv_bytes(shape, context, 2)),
        'ours dense': ms(weight_bytes + kv_bytes(shape, context, 4)),
        'ours PrHS': ms(weight_bytes + budget * kv_bytes(shape, context, 4) + summary_bytes(shape, context, 4)),
        'bf16 dense': ms(weight_bytes + kv_bytes(shape, context, 2)),
        'bf16 PrHS': ms(weight_bytes + budget * kv_bytes(shape, context, 2) + summary_bytes(shape, context, 2)),
    }


def rows_for(context, tf, ours, shape, weight_bytes, budget, bandwidth):
    f = floors_ms(shape, weight_bytes, context, budget, bandwidth)
    rows = []

    def row(engine, prefill, decode, peak, floor_key, bf16_key, extra=None):
        decode_ms = decode['decode_median_ms']
        r = {'context': context, 'engine': engine, 'prefill_tokens_per_s': prefill, 'decode_median_ms': decode_ms,
             'decode_mean_ms': decode['decode_mean_ms'], 'tokens_per_s': 1e3 / decode_ms if decode_ms else None, 'floor_ms': f[floor_key], 'bf16_floor_ms': f[bf16_key],
             'over_floor': decode_ms / f[floor_key] if decode_ms else None,
             'over_bf16_floor': decode_ms / f[bf16_key] if decode_ms else None, 'peak_gb': peak / 1e9 if peak else None}
        r.update(extra or {})
        rows.append(r)

    if tf and not tf['skipped']:
        row('transformers (sdpa)', tf['prefill_tokens_per_s'], tf, tf['peak_bytes'], 'transformers', 'bf16 dense',
            {'kv_share_read': 1.0, 'steps_done': len(tf['greedy_ids'])})
    if ours and 'dense' in ours:
        row('ours dense', ours['prefill_tokens_per_s'], ours['dense'], ours['device_bytes_used'], 'ours dense', 'bf16 dense',
            {'kv_share_read': 1.0, 'steps_done': ours['dense']['steps_done']})
    for key, name in [('prhs_held', f'ours PrHS {budget:g}, held to it'), ('prhs', f'ours PrHS {budget:g}, certificate expands')]:
        if ours and key in ours:
            p = ours[key]
            row(name, ours['prefill_tokens_per_s'], p, ours['device_bytes_used'], 'ours PrHS', 'bf16 PrHS',
                {'kv_share_read': p['entries_read_share'], 'summary_bytes_per_step': p['summary_bytes_per_step'],
                 'steps_done': p['steps_done'], 'expanded': p['expanded'], 'selections': p['selections']})
    return rows


def ratios_for(context, tf, ours):
    out = {'context': context}
    if tf and not tf['skipped'] and ours and 'dense' in ours:
        out['prefill_ours_over_transformers'] = ours['prefill_tokens_per_s'] / tf['prefill_tokens_per_s']
        if 'prefill_tokens_per_s' in ours.get('half_prefill', {}):
            out['prefill_ours_half_over_transformers'] = ours['half_prefill']['prefill_tokens_per_s'] / tf['prefill_tokens_per_s']
        out['dense_tokens_per_s_over_transformers'] = tf['decode_median_ms'] / ours['dense']['decode_median_ms']
        for key in ('prhs_held', 'prhs'):
            if key in ours:
                out[f'{key}_tokens_per_s_over_transformers'] = tf['decode_median_ms'] / ours[key]['decode_median_ms']
                out[f'{key}_mean_tokens_per_s_over_transformers'] = tf['decode_mean_ms'] / ours[key]['decode_mean_ms']
    return out


def fmt(v, spec):
    return '—' if v is None else format(v, spec)


def table(result):
    lines = [f"End to end: Qwen2.5-Coder-1.5B shape, random bf16 weights, batch 1 — {result['device']}, "
             f"copy {result['copy_bandwidth_Bps'] / 1e12:.2f} TB/s, {result['date']}, commit {result['commit']}",
             '| context | engine | prefill tok/s | decode ms/token (median) | mean | steps | tok/s (median) | KV read | floor ms | '
             'x floor | bf16 floor ms | x bf16 floor | peak GPU GB |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in result['rows']:
        lines.append(f"| {r['context']} | {r['engine']} | {fmt(r['prefill_tokens_per_s'], '.0f')} | {fmt(r['decode_median_ms'], '.2f')} | "
                     f"{fmt(r['decode_mean_ms'], '.2f')} | {r['steps_done']} | {fmt(r['tokens_per_s'], '.1f')} | "
                     f"{r['kv_share_read']:.0%} | {r['floor_ms']:.2f} | {fmt(r['over_floor'], '.2f')} | "
                     f"{r['bf16_floor_ms']:.2f} | {fmt(r['over_bf16_floor'], '.2f')} | {fmt(r['peak_gb'], '.1f')} |")
    for q in result['ratios']:
        parts = [f"{k.replace('_', ' ')} {v:.2f}x" for k, v in q.items() if k != 'context']
        if parts:
            lines.append(f"{q['context']}: " + '; '.join(parts))
    for g in result['greedy_agreement']:
        lines.append(f"{g['context']}: greedy ids, ours dense vs transformers (float32 vs bf16 activations): "
                     f"the first {g['same_first_ids']} of {g['of']} agree")
    for s in result['not_run']:
        lines.append(f"not run: {s['engine']} at {s['context']}: {s['reason']}")
    return '\n'.join(lines)


def git_commit():
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown (no git here: pass --commit)'


def main():
    args = parse_args()
    if args.transformers_row:
        transformers_child(args)
        return
    start = time.time()
    deadline = start + args.time_limit
    if not torch.cuda.is_available():
        sys.exit('e2e: no CUDA GPU visible to PyTorch (this benchmark needs one)')
    binary = args.forward_check or build_forward_check()
    spec = ensure_model(args.model_dir)
    shape = random_model.QWEN_1_5B
    weight_bytes = random_model.file_bytes(shape)
    bandwidth = attention.copy_bandwidth()
    log(f'copy rate {bandwidth / 1e12:.2f} TB/s')
    import transformers
    result = {'benchmark': 'e2e decode and prefill, Qwen2.5-Coder-1.5B shape, random bf16 weights, batch 1',
              'device': torch.cuda.get_device_name(0), 'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
              'commit': args.commit or git_commit(), 'torch': torch.__version__, 'transformers_version': transformers.__version__,
              'command': ' '.join(sys.argv), 'contexts': args.contexts, 'steps': args.steps, 'budget': args.budget,
              'time_limit_s': args.time_limit, 'copy_bandwidth_Bps': bandwidth, 'weight_bytes': weight_bytes, 'floors': FLOORS,
              'prefill_notes': 'transformers: the whole prompt in one forward (logits of the last position only) unless noted; '
                               'ours: forward calls of 4096 tokens (the engine runs them in chunks of its backend\'s size)',
              'transformers': [], 'ours': [], 'rows': [], 'ratios': [], 'greedy_agreement': [], 'not_run': []}

    # transformers first (seconds per context); our prefill takes what time is left.
    tf_by_context = {}
    for context in args.contexts:
        later = len(args.contexts) * PROCESS_OVERHEAD_S
        limit = max(0.0, (deadline - time.time() - later) / 2)
        log(f'transformers at {context}')
        tf = run_transformers(args, context, limit)
        tf_by_context[context] = tf
        result['transformers'].append(tf)
        if tf['skipped']:
            result['not_run'].append({'engine': 'transformers', 'context': context, 'reason': tf['reason']})

    ours_by_context = {}
    decode_s = 3 * min(args.steps * STEP_GUESS_S, args.decode_limit)  # dense, PrHS held, PrHS
    for i, context in enumerate(args.contexts):
        # The prefill time left is shared by the rows still to run in proportion to context^1.5 (its
        # cost grows faster than linearly); what a row does not use goes to the next ones.
        rows_left = args.contexts[i:]
        available = deadline - time.time() - len(rows_left) * (PROCESS_OVERHEAD_S + decode_s)
        limit = available * context ** 1.5 / sum(c ** 1.5 for c in rows_left)
        if limit < 5:
            reason = f'no time left in the {args.time_limit:.0f} s limit'
            result['not_run'].append({'engine': 'ours (dense and PrHS)', 'context': context, 'reason': reason})
            continue
        # A step of PrHS whose certificate expands can take seconds (one read-back per added block); from
        # the slowest one at a shorter context, scaled by the context, it is left out where one step
        # would pass the decode limit (a step is never cut).
        expand, slowest = True, None
        for c in sorted(ours_by_context):
            if 'prhs' in ours_by_context[c]:
                slowest = (c, ours_by_context[c]['prhs']['decode_max_ms'] / 1e3)
        if slowest and slowest[1] * context / slowest[0] > args.decode_limit:
            expand = False
            result['not_run'].append({'engine': f'ours PrHS {args.budget:g}, certificate expands', 'context': context,
                                      'reason': f'a step would take up to ~{slowest[1] * context / slowest[0]:.0f} s (the slowest at '
                                                f'{slowest[0]} took {slowest[1]:.1f} s; decode limit {args.decode_limit:.0f} s)'})
        try:
            ours = run_ours(binary, spec, context, args.steps, args.budget, limit, args.decode_limit, expand)
        except Exception as e:  # noqa: BLE001 (a row's failure is reported, the run goes on)
            ours = {'error': f'{type(e).__name__}: {e}'[:300]}
        if not args.no_half_prefill and 'error' not in ours and not ours.get('prefill_skipped'):
            # The same prefill with 16-bit operands, as transformers' bf16 prefill (dense decode, 3 steps).
            half = run_ours(binary, spec, context, 3, 0, limit, args.decode_limit, False, 'half')
            ours['half_prefill'] = {k: half.get(k) for k in ('prefill_s', 'prefill_tokens_per_s', 'device_bytes_used', 'error')
                                    if k in half}
        ours_by_context[context] = ours
        result['ours'].append(ours)
        if 'error' in ours:
            result['not_run'].append({'engine': 'ours (dense and PrHS)', 'context': context, 'reason': ours['error']})
        elif ours.get('prefill_skipped'):
            result['not_run'].append({'engine': 'ours (dense and PrHS)', 'context': context, 'reason':
                                      f"prefill would take ~{ours['prefill_projected_s']:.0f} s (limit {ours['prefill_limit_s']:.0f} s; "
                                      f"{ours['prefilled_tokens']} tokens took {ours['prefill_elapsed_s']:.1f} s, "
                                      f"{ours['prefill_tokens_per_s_so_far']:.0f} tok/s)"})

    for context in args.contexts:
        tf, ours = tf_by_context.get(context), ours_by_context.get(context)
        try:
            result['rows'] += rows_for(context, tf, ours, shape, weight_bytes, args.budget, bandwidth)
            result['ratios'].append(ratios_for(context, tf, ours))
            if tf and not tf['skipped'] and ours and 'dense' in ours:
                a, b = tf['greedy_ids'], ours['dense']['greedy_ids']
                same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                result['greedy_agreement'].append({'context': context, 'same_first_ids': same, 'of': min(len(a), len(b))})
        except (KeyError, TypeError, ZeroDivisionError) as e:  # an unexpected line from a row: kept raw in the JSON
            result['not_run'].append({'engine': 'table', 'context': context, 'reason': f'row not tabulated: {type(e).__name__}: {e}'})
    result['elapsed_s'] = time.time() - start
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
            f.write('\n')
        log(f'wrote {args.out}')
    print(table(result))


if __name__ == '__main__':
    main()
