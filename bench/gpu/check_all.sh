#!/usr/bin/env bash
# Every correctness check of the CUDA engine on one GPU, no timing (about 3 minutes on an H100):
# ops.py's decode, GEMM and prefill attention checks, forward_check (CPU, CUDA and CUDA with the Half prefill against
# transformers on the 4 fixtures and prefill_model.py's head-dim-128 model),
# prhs_engine_check (the CPU engine against the CUDA engine, shadowed and not), each with the default
# paths and with the older ones the switches in $OLD give back, then compute-sanitizer memcheck and
# racecheck. Needs nvcc, PyTorch and .carry/gpu-forward (node --import tsx bench/gpu/forward-specs.ts
# where Node is). Run from the repository root; writes $OUT/checks.txt and prints its summary.
set -uo pipefail
OUT=${OUT:-/tmp/repo-lens-gpu-checks}; mkdir -p "$OUT"
t0=$(date +%s)
stamp() { echo "[checks +$(( $(date +%s) - t0 ))s] $*" | tee -a "$OUT/checks.txt"; }
command -v nvcc >/dev/null || PATH=$PATH:/usr/local/cuda/bin
export REPO_LENS_CUDA_ARCHS=${REPO_LENS_CUDA_ARCHS:-90a}
OLD="REPO_LENS_CUDA_DECODE_LINEAR=0 REPO_LENS_CUDA_DECODE_EARLY=0 REPO_LENS_CUDA_MLP16=0 REPO_LENS_CUDA_LOGITS_PIECES=0 REPO_LENS_CUDA_BATCH_EXPANSION=0 REPO_LENS_CUDA_EARLY_QUERY=0 REPO_LENS_CUDA_SKIP_FLUSH=0 REPO_LENS_CUDA_SCALE_QUERY=0 REPO_LENS_CUDA_ATTEND_EARLY=0 REPO_LENS_CUDA_FOLD_TOGETHER=0 REPO_LENS_CUDA_WRITE_TOGETHER=0 REPO_LENS_CUDA_SKETCH_CACHE=0 REPO_LENS_CUDA_SIDE_COPIES=0 REPO_LENS_CUDA_SKETCH_AHEAD=0 REPO_LENS_CUDA_GATHER_WRITES=0 REPO_LENS_CUDA_WGMMA=0 REPO_LENS_CUDA_KEEP_IDS=0 REPO_LENS_CUDA_WRITE_AT_LAUNCH=0 REPO_LENS_CUDA_MAPPED_QUERY=0 REPO_LENS_CUDA_WRITE_EARLY=0 REPO_LENS_CUDA_SKETCH_MMA=0 REPO_LENS_CUDA_MINMAX_CHUNKS=0 REPO_LENS_CUDA_SKETCH_APART=0 REPO_LENS_CUDA_COPY_STREAM=0 REPO_LENS_CUDA_KEEP_TILES=0"
SPECS=".carry/gpu-forward/stories260K.spec .carry/gpu-forward/llama3.spec .carry/gpu-forward/qwen2.spec .carry/gpu-forward/mistral.spec"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$OUT/checks.txt"

stamp "builds start"
( sh bench/gpu/build_forward_check.sh /tmp/fc > /tmp/fc-build.log 2>&1; echo "forward_check build exit $?" >> /tmp/fc-build.log ) &
p_fc=$!
( PRHS_CHECK_OUT=/tmp/chk bash bench/gpu/check_prhs_engine.sh --build > /tmp/chk-build.log 2>&1; echo "prhs_engine_check build exit $?" >> /tmp/chk-build.log ) &
p_chk=$!
( cd bench/gpu && python3 -c "import attention as A, os; A.build_library('/tmp/librl_cuda_bench.so')" > /tmp/lib-build.log 2>&1; echo "lib build exit $?" >> /tmp/lib-build.log ) &
p_lib=$!
# head dim 128: the tiled prefill attention and the GEMM in both prefill precisions (the fixtures' head dims take neither)
( python3 bench/gpu/prefill_model.py /tmp/pm > /tmp/pm.log 2>&1; echo "prefill_model exit $?" >> /tmp/pm.log ) &
p_pm=$!

wait $p_lib; stamp "$(tail -n 1 /tmp/lib-build.log)"
for op in decode gemm prefill; do  # gemm, prefill: both prefill precisions
  timeout 150 python3 bench/gpu/ops.py --$op --checks-only --lib /tmp/librl_cuda_bench.so > /tmp/ops.log 2>&1
  echo "ops.py --$op --checks-only exit $?" >> /tmp/ops.log
  { echo "=== ops.py --$op --checks-only"; grep -E 'rel err|checks:|exit|Error|error' /tmp/ops.log ; } >> "$OUT/checks.txt"
done
stamp "ops done"

# check LABEL COMMAND...: runs it, keeps its verdict lines (and every per-spec JSON line) in checks.txt
check() {
  local label=$1; shift
  env "$@" > /tmp/check.txt 2>&1
  echo "exit $?" >> /tmp/check.txt
  { echo "=== $label"; grep -E '"pass": |prhs_engine_check:|^exit|rror|SUMMARY|hazard|out of bounds' /tmp/check.txt | cut -c1-1200 | head -n 40; } >> "$OUT/checks.txt"
  stamp "$label done"
}
wait $p_fc; stamp "$(tail -n 1 /tmp/fc-build.log)"; grep -iE 'error' /tmp/fc-build.log | head -n 10 >> "$OUT/checks.txt"
FC=/tmp/fc/forward_check
wait $p_pm; stamp "$(tail -n 1 /tmp/pm.log)"
HD128=/tmp/pm/qwen2-hd128.spec
check "forward_check" timeout 120 $FC $SPECS $HD128
check "forward_check, old paths" $OLD timeout 120 $FC $SPECS $HD128

wait $p_chk; stamp "$(tail -n 1 /tmp/chk-build.log)"; grep -iE 'error' /tmp/chk-build.log | head -n 10 >> "$OUT/checks.txt"
CHK=/tmp/chk/prhs_engine_check
check "prhs shadowed" timeout 120 $CHK --peer cuda --prefill 400 --steps 40 $SPECS
check "prhs unshadowed" PRHS_CHECK_SHADOW=0 timeout 90 $CHK --peer cuda --prefill 400 --steps 40 $SPECS
check "prhs old paths, shadowed" $OLD timeout 60 $CHK --peer cuda --prefill 400 --steps 24 $SPECS
# head dim 128: the KV heads of a layer attended in one launch (chosen_attention_heads; the fixtures take one launch per head),
# and the sketch bound's products on the shape of the 1.5B model's heads (group 6, 4 tiles of positions)
check "prhs unshadowed qwen2-hd128" PRHS_CHECK_SHADOW=0 timeout 60 $CHK --peer cuda --prefill 400 --steps 40 $HD128
check "prhs shadowed qwen2-hd128" timeout 60 $CHK --peer cuda --prefill 400 --steps 40 $HD128

CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
check "memcheck forward_check stories260K" timeout 100 $CS --tool memcheck --error-exitcode 9 $FC .carry/gpu-forward/stories260K.spec
check "memcheck prhs unshadowed stories260K" PRHS_CHECK_SHADOW=0 timeout 100 $CS --tool memcheck --error-exitcode 9 $CHK --peer cuda --prefill 200 --steps 8 .carry/gpu-forward/stories260K.spec
check "memcheck forward_check qwen2-hd128" timeout 100 $CS --tool memcheck --error-exitcode 9 $FC $HD128
check "racecheck forward_check stories260K" timeout 100 $CS --tool racecheck --error-exitcode 9 $FC .carry/gpu-forward/stories260K.spec
check "racecheck prhs unshadowed stories260K" PRHS_CHECK_SHADOW=0 timeout 100 $CS --tool racecheck --error-exitcode 9 $CHK --peer cuda --prefill 200 --steps 8 .carry/gpu-forward/stories260K.spec
stamp "all done"
grep -E "^===|checks:|PASS|FAIL|SUMMARY|exit" "$OUT/checks.txt" | cut -c1-300
