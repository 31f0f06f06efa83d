#!/usr/bin/env bash
# Written in session 5 for the GPU round that did not run; kept for the next session (needs .carry/gpu-forward
# from `node --import tsx bench/gpu/forward-specs.ts` carried). The paths it checks are off by default until
# such a run passes, so they are switched on here; a run that sets a switch to 0 still gets the old path.
export REPO_LENS_CUDA_DECODE_LINEAR=${REPO_LENS_CUDA_DECODE_LINEAR:-1} REPO_LENS_CUDA_BATCH_EXPANSION=${REPO_LENS_CUDA_BATCH_EXPANSION:-1}
export REPO_LENS_CUDA_EARLY_QUERY=${REPO_LENS_CUDA_EARLY_QUERY:-1} REPO_LENS_CUDA_SKIP_FLUSH=${REPO_LENS_CUDA_SKIP_FLUSH:-1} REPO_LENS_CUDA_SCALE_QUERY=${REPO_LENS_CUDA_SCALE_QUERY:-1}
export REPO_LENS_CUDA_ATTEND_EARLY=${REPO_LENS_CUDA_ATTEND_EARLY:-1} REPO_LENS_CUDA_FOLD_TOGETHER=${REPO_LENS_CUDA_FOLD_TOGETHER:-1} REPO_LENS_CUDA_WRITE_TOGETHER=${REPO_LENS_CUDA_WRITE_TOGETHER:-1}
# H1 round 2 (issue 4: fused decode ops + decode_linear). Run in the repo root; needs .carry/gpu-forward
# carried (node --import tsx bench/gpu/forward-specs.ts was run on the CPU machine). ~6-7 min.
# Writes $OUT/{ops-decode.json, ops-decode.log, forward-check.txt, time.jsonl, build.log}.
set -uo pipefail
OUT=${OUT:-/tmp/h1-out}; mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[h1 +$(( $(date +%s) - t0 ))s] $*"; }
export REPO_LENS_CUDA_ARCHS=90
MODEL=/tmp/repo-lens-e2e-model
# 1. in parallel: forward_check build, ops library build, random 1.5B-shape model
stamp "builds + model write start"
( sh bench/gpu/build_forward_check.sh native/build/forward_check > "$OUT/build.log" 2>&1; echo "forward_check build exit $?" >> "$OUT/build.log" ) &
p_fc=$!
( cd bench/gpu && python3 -c "import attention as A, os; A.build_library(os.path.join(A.ROOT, 'native', 'build', 'librl_cuda_bench.so'))" > "$OUT/lib-build.log" 2>&1 ) &
p_lib=$!
( python3 -c "import sys; sys.path.insert(0, 'bench/gpu'); import e2e; e2e.ensure_model('$MODEL')" > "$OUT/model.log" 2>&1 ) &
p_model=$!
wait $p_lib; stamp "library built: $(tail -n 2 "$OUT/lib-build.log" | tr '\n' ' ' | cut -c1-300)"
# 2. op checks + timings (old matvec vs decode_linear, each split/variant; a layer old vs fused)
timeout 200 python3 bench/gpu/ops.py --decode --lib native/build/librl_cuda_bench.so --out "$OUT/ops-decode.json" > "$OUT/ops-decode.log" 2>&1
echo "ops.py exit $?" >> "$OUT/ops-decode.log"
stamp "ops.py done"
wait $p_fc; stamp "forward_check: $(tail -n 1 "$OUT/build.log")"
cat "$OUT/lib-build.log" >> "$OUT/build.log"; rm -f "$OUT/lib-build.log"
# 3. whole-model logits vs transformers on the 4 fixtures, CPU and CUDA (fused ops on: the default)
FC=native/build/forward_check/forward_check
timeout 120 $FC .carry/gpu-forward/stories260K.spec .carry/gpu-forward/llama3.spec .carry/gpu-forward/qwen2.spec .carry/gpu-forward/mistral.spec > "$OUT/forward-check.txt" 2>&1
echo "forward_check exit $?" >> "$OUT/forward-check.txt"
REPO_LENS_CUDA_DECODE_LINEAR=0 timeout 60 $FC .carry/gpu-forward/qwen2.spec > /tmp/h1-fc-off.txt 2>&1
echo "--- REPO_LENS_CUDA_DECODE_LINEAR=0 (old path), qwen2: exit $?" >> "$OUT/forward-check.txt"; cat /tmp/h1-fc-off.txt >> "$OUT/forward-check.txt"
stamp "forward_check fixtures done"
# 4. dense decode timing on the random Qwen2.5-Coder-1.5B-shape model: new (default) vs old path
wait $p_model; stamp "model: $(tail -n 1 "$OUT/model.log")"; cat "$OUT/model.log" >> "$OUT/build.log"; rm -f "$OUT/model.log"
SPEC=$MODEL/qwen2.5-1.5b-shape.spec
: > "$OUT/time.jsonl"
# compute-sanitizer on the small fixture (fused decode kernels included: greedy decode runs n = 1 steps)
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 $FC .carry/gpu-forward/stories260K.spec > /tmp/h1-san.txt 2>&1
    echo "--- compute-sanitizer $tool stories260K: exit $? ; $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|Error|hazard' /tmp/h1-san.txt | head -n 3 | tr '\n' ' ')" >> "$OUT/forward-check.txt"
  done
  stamp "sanitizers done"
fi
for ctx in 32768 131072; do
  for path in 1 0; do
    lin=1; early=0
    [ $path = 0 ] && lin=0
    [ $path = early ] && early=1
    line=$(REPO_LENS_CUDA_DECODE_LINEAR=$lin REPO_LENS_CUDA_DECODE_EARLY=$early timeout 110 $FC --time "$SPEC" $ctx 24 --prefill-limit 60 --decode-limit 6 2>>"$OUT/build.log" | grep '^{' | tail -n 1)
    echo "{\"decode_linear\": \"$path\", \"result\": ${line:-null}}" >> "$OUT/time.jsonl"
    stamp "time ctx $ctx decode_linear=$path done"
  done
done
# 5. compact summary
python3 - "$OUT" <<'PY'
import json, sys, re
out = sys.argv[1]
print('==== H1 round 2 summary ====')
try:
    r = json.load(open(f'{out}/ops-decode.json'))
    bad = [c for c in r['checks'] if not c['ok']]
    print(f"ops checks: {len(r['checks']) - len(bad)}/{len(r['checks'])} ok; max rel err {max(c['rel_err'] for c in r['checks']):.2e}")
    for c in bad[:12]: print('  FAIL', c['op'], c['rel_err'])
    print(f"copy bw {r.get('copy_bandwidth_Bps', 0) / 1e12:.2f} TB/s")
    for m in r.get('decode_linear', []):
        new = {k[4:]: round(v['median_s'] * 1e6, 1) for k, v in m.items() if k.startswith('new ')}
        print(f"  {m['matrix']:16s} old {m['old']['median_s']*1e6:6.1f} torch {m['torch']['median_s']*1e6:6.1f} floor {m['floor_s']*1e6:6.1f} new {new}")
    L = r.get('decode_layer')
    if L: print(f"  layer w/o attn: old {L['old']['median_s']*1e6:.1f} us, fused {L['fused']['median_s']*1e6:.1f} us (early {L['fused_early']['median_s']*1e6:.1f}, x in smem {L['fused_smem_x']['median_s']*1e6:.1f}), floor {L['floor_s']*1e6:.1f}; agree {L['fused_vs_old_rel']}")
except Exception as e:
    print('ops-decode.json unreadable:', e)
txt = open(f'{out}/forward-check.txt').read()
for line in txt.splitlines():
    if line.startswith('{') or 'exit' in line or 'FAIL' in line or 'error' in line.lower():
        print('  fc', line[:300])
ids = {}
for line in open(f'{out}/time.jsonl'):
    j = json.loads(line)
    res = j['result'] or {}
    d = dict(res.get('dense', {}))
    ids[(res.get('context'), j['decode_linear'])] = d.pop('greedy_ids', None)
    print(f"  time decode_linear={j['decode_linear']} ctx {res.get('context')}: dense {d} floor {res.get('dense_floor_ms')} ms x{res.get('dense_over_floor')} prefill tok/s {res.get('prefill_tokens_per_s')}")
for ctx in (32768, 131072):
    a, b = ids.get((ctx, '1')), ids.get((ctx, '0'))
    if a and b:
        m = min(len(a), len(b))
        print(f"  ctx {ctx}: greedy ids new vs old path agree on {sum(x == y for x, y in zip(a[:m], b[:m]))}/{m}")
PY
stamp "all done"
