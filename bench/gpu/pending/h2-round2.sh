#!/usr/bin/env bash
# Written in session 5 for the GPU round that did not run; kept for the next session (needs .carry/gpu-forward
# from `node --import tsx bench/gpu/forward-specs.ts` carried). The paths it checks are off by default until
# such a run passes, so they are switched on here; a run that sets a switch to 0 still gets the old path.
export REPO_LENS_CUDA_DECODE_LINEAR=${REPO_LENS_CUDA_DECODE_LINEAR:-1} REPO_LENS_CUDA_BATCH_EXPANSION=${REPO_LENS_CUDA_BATCH_EXPANSION:-1}
export REPO_LENS_CUDA_EARLY_QUERY=${REPO_LENS_CUDA_EARLY_QUERY:-1} REPO_LENS_CUDA_SKIP_FLUSH=${REPO_LENS_CUDA_SKIP_FLUSH:-1} REPO_LENS_CUDA_SCALE_QUERY=${REPO_LENS_CUDA_SCALE_QUERY:-1}
export REPO_LENS_CUDA_ATTEND_EARLY=${REPO_LENS_CUDA_ATTEND_EARLY:-1} REPO_LENS_CUDA_FOLD_TOGETHER=${REPO_LENS_CUDA_FOLD_TOGETHER:-1} REPO_LENS_CUDA_WRITE_TOGETHER=${REPO_LENS_CUDA_WRITE_TOGETHER:-1}
# H2 round 2 (issue 4: PrHS decode waits). Run in the repo root; needs .carry/gpu-forward carried
# (node --import tsx bench/gpu/forward-specs.ts on the CPU machine). ~5-6 min (time-guarded).
# Round 1's checks again (with the peer now running the fused decode ops) + compute-sanitizer memcheck
# of the unshadowed engine path on stories260K, and --time at 128K and 32K, new vs old path. Writes $OUT/{check.txt,
# time.jsonl, timing.txt, build.log}; prints a compact summary last.
#   new path (default): q copied to the host before the write-through wait, the write-through skipped
#   where the policy reads no host key, q scaled on the device for the bounds, the certificate's
#   expansion in batches (BlockBounds::masses), reused sets attended before the host has q
#   (DecodeAttention::prepare), a layer's KV heads folded / written in one launch, the expansion's
#   running sums; old path: every switch of $OLD below at 0.
set -uo pipefail
OUT=${OUT:-/tmp/h2-out2}; mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[h2 +$(( $(date +%s) - t0 ))s] $*"; }
export REPO_LENS_CUDA_ARCHS=90
command -v nvcc >/dev/null || PATH=$PATH:/usr/local/cuda/bin
MODEL=/tmp/repo-lens-e2e-model
OLD="REPO_LENS_CUDA_EARLY_QUERY=0 REPO_LENS_CUDA_SKIP_FLUSH=0 REPO_LENS_CUDA_SCALE_QUERY=0 REPO_LENS_CUDA_BATCH_EXPANSION=0 REPO_LENS_CUDA_ATTEND_EARLY=0 REPO_LENS_CUDA_FOLD_TOGETHER=0 REPO_LENS_CUDA_WRITE_TOGETHER=0 REPO_LENS_PRHS_RUNNING_SUMS=0"
SEP="REPO_LENS_CUDA_FOLD_TOGETHER=0 REPO_LENS_CUDA_WRITE_TOGETHER=0"
CHK_DIR=/tmp/h2-prhs-check
FC_DIR=/tmp/h2-forward-check
: > "$OUT/build.log"
# 1. in parallel: prhs_engine_check build, forward_check build, the random 1.5B-shape model
stamp "builds + model start"
( PRHS_CHECK_OUT=$CHK_DIR bash bench/gpu/check_prhs_engine.sh --build > /tmp/h2-chk-build.log 2>&1; echo "prhs_engine_check build exit $?" >> /tmp/h2-chk-build.log ) &
p_chk=$!
( sh bench/gpu/build_forward_check.sh $FC_DIR > /tmp/h2-fc-build.log 2>&1; echo "forward_check build exit $?" >> /tmp/h2-fc-build.log ) &
p_fc=$!
( python3 -c "import sys; sys.path.insert(0, 'bench/gpu'); import e2e; e2e.ensure_model('$MODEL')" > /tmp/h2-model.log 2>&1 ) &
p_model=$!
wait $p_chk; cat /tmp/h2-chk-build.log >> "$OUT/build.log"; stamp "$(tail -n 1 /tmp/h2-chk-build.log)"
SPECS=".carry/gpu-forward/stories260K.spec .carry/gpu-forward/llama3.spec .carry/gpu-forward/qwen2.spec .carry/gpu-forward/mistral.spec"
CHK=$CHK_DIR/prhs_engine_check
: > "$OUT/check.txt"
run_check() {  # run_check LABEL ENV... -- ARGS
  local label=$1; shift
  echo "=== $label" >> "$OUT/check.txt"
  env "$@" >> "$OUT/check.txt" 2>&1
  echo "=== $label exit $?" >> "$OUT/check.txt"
  stamp "check $label: $(grep 'prhs_engine_check:' "$OUT/check.txt" | tail -n 1 | cut -c1-160)"
}
# 2. CPU engine vs CUDA engine, new path: shadowed (same-input kernel and bounds checks; the
#    shadows read the host cache, so the write-through stays), then unshadowed (the engine's own path:
#    the write-through skipped where the policy reads no key)
run_check "new shadowed" timeout 120 $CHK --peer cuda --prefill 400 --steps 40 $SPECS
run_check "new unshadowed" PRHS_CHECK_SHADOW=0 timeout 90 $CHK --peer cuda --prefill 400 --steps 40 $SPECS
# 3. timing on the random Qwen2.5-Coder-1.5B-shape model, PrHS at 5%: new vs old path at 128K and 32K
wait $p_fc; cat /tmp/h2-fc-build.log >> "$OUT/build.log"; stamp "$(tail -n 1 /tmp/h2-fc-build.log)"
wait $p_model; cat /tmp/h2-model.log >> "$OUT/build.log"; stamp "model: $(tail -n 1 /tmp/h2-model.log)"
FC=$FC_DIR/forward_check
SPEC=$MODEL/qwen2.5-1.5b-shape.spec
: > "$OUT/time.jsonl"; : > "$OUT/timing.txt"
time_run() {  # time_run LABEL CONTEXT EXPAND ENV...
  local label=$1 ctx=$2 expand=$3; shift 3
  local line
  line=$(env REPO_LENS_CUDA_TIMING=1 "$@" timeout 110 $FC --time "$SPEC" $ctx 12 --budget 0.05 --prefill-limit 60 --decode-limit 6 --prhs-expand $expand 2>/tmp/h2-time-err.txt | grep '^{' | tail -n 1)
  echo "{\"label\": \"$label\", \"result\": ${line:-null}}" >> "$OUT/time.jsonl"
  { echo "=== $label"; grep -v '^$' /tmp/h2-time-err.txt | tail -n 8; } >> "$OUT/timing.txt"
  stamp "time $label done"
}
left() { [ $(( $(date +%s) - t0 )) -lt ${1:-300} ]; }  # time left in the budget
time_run "128K new" 131072 0
left 200 && time_run "128K old" 131072 0 $OLD
# 4. memcheck of the engine's own path (prepare, heads together, batched masses, running sums) on stories260K
if left 260 && { command -v compute-sanitizer >/dev/null || [ -x /usr/local/cuda/bin/compute-sanitizer ]; }; then
  CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  PRHS_CHECK_SHADOW=0 timeout 100 $CS --tool memcheck --error-exitcode 9 $CHK --peer cuda --prefill 200 --steps 8 .carry/gpu-forward/stories260K.spec > /tmp/h2-memcheck.txt 2>&1
  echo "memcheck exit $?" >> /tmp/h2-memcheck.txt
  { echo "=== memcheck (unshadowed, stories260K, 8 steps)"; grep -E "ERROR SUMMARY|prhs_engine_check:|memcheck exit|Invalid|out of bounds" /tmp/h2-memcheck.txt | head -n 12; } >> "$OUT/check.txt"
  stamp "memcheck: $(grep -E 'ERROR SUMMARY|memcheck exit' /tmp/h2-memcheck.txt | tr '\n' ' ')"
fi
left 270 && time_run "32K new" 32768 1
left 290 && time_run "32K old" 32768 1 $OLD
left 310 && run_check "old shadowed" $OLD timeout 45 $CHK --peer cuda --prefill 400 --steps 24 $SPECS
# 5. compact summary
python3 - "$OUT" <<'PY'
import json, sys, re
out = sys.argv[1]
print('==== H2 round 2 summary ====')
label = None
for line in open(f'{out}/check.txt'):
    if line.startswith('=== ') and not ' exit ' in line: label = line[4:].strip()
    if line.startswith('prhs_engine_check:'): print(f'check [{label}]: {line.strip()[:300]}')
    if label and label.startswith('memcheck') and not line.startswith('==='): print(f'  {line.strip()[:200]}')
    if line.startswith('{') and '"pass": false' in line:
        r = json.loads(line); print(f"  FAIL {r['spec'].split('/')[-1]} {r['setting']}: mism {r['selection_mismatches']} {r['first_mismatch'][:120]} logit {r['logits_max_rel']:.2g} dh {r['delta_hat_max_abs']:.2g} lse {r['same_input_lse_max_abs']:.2g} bounds {r['bounds_max_abs']:.2g}/{r['bounds_sums_max_abs']:.2g}")
mx = {}
for line in open(f'{out}/check.txt'):
    if line.startswith('{'):
        r = json.loads(line)
        for k in ('bounds_max_abs', 'bounds_sums_max_abs', 'delta_hat_max_abs', 'logits_max_rel'): mx[k] = max(mx.get(k, 0), r.get(k, 0))
        mx['mass_calls'] = mx.get('mass_calls', 0) + r.get('mass_calls', 0); mx['expansions'] = mx.get('expansions', 0) + r.get('expansions', 0)
print('check maxima over all runs:', {k: (round(v, 12) if isinstance(v, float) else v) for k, v in mx.items()})
for line in open(f'{out}/time.jsonl'):
    r = json.loads(line); res = r['result']
    if not res: print(f"time {r['label']}: no result"); continue
    if res.get('prefill_skipped'): print(f"time {r['label']}: prefill skipped {res.get('prefill_projected_s')}"); continue
    parts = [f"dense {res['dense']['decode_median_ms']:.2f}"]
    for m in ('prhs_held', 'prhs'):
        if m in res: parts.append(f"{m} {res[m]['decode_median_ms']:.2f} (mean {res[m]['decode_mean_ms']:.2f}, max {res[m]['decode_max_ms']:.1f}; read {res[m]['entries_read_share']:.3f}, scored {res[m]['scoring_passes']}/{res[m]['selections']}, exp {res[m]['expanded']})")
    print(f"time {r['label']} ctx {res['context']}: " + '; '.join(parts))
for line in open(f'{out}/timing.txt'):
    line = line.strip()
    if line.startswith('==='): lab = line[4:]
    m = re.match(r'policy_timing (\S+) (\{.*\})', line)
    if m:
        t = json.loads(m.group(2)); steps = max(t['steps'], 1)
        waits = {k: f"{t[k][0]/steps:.1f}x{t[k][1]/max(t[k][0],1)*1e3:.0f}us" for k in ('query', 'flush', 'scores', 'sums', 'state', 'table', 'masses', 'other') if t[k][0]}
        print(f"  policy [{lab} {m.group(1)}] per step: attend {t['per_step_ms']['attend']:.3f} ms, waits {t['per_step_ms']['waits']:.3f} ms: {waits}")
PY
stamp "done"
