#!/usr/bin/env bash
# Builds and runs bench/gpu/prhs_engine_check: sparse decode attention (PrHS and the baselines) on
# the CUDA engine against the CPU engine on stories260K and the random-weight fixtures, without
# Node.js or the network. Needs nvcc (CUDA 12.8+; sm_90 by default) and a GPU; the model specs in
# .carry/gpu-forward/ (written where Node runs: node --import tsx bench/gpu/forward-specs.ts).
#   bash bench/gpu/check_prhs_engine.sh            build with nvcc, run on the GPU
#   bash bench/gpu/check_prhs_engine.sh --build    build only (any machine with nvcc)
#   REPO_LENS_CUDA=0 bash bench/gpu/check_prhs_engine.sh   CPU-only build, the peer emulated on the host
# Env: REPO_LENS_CUDA_ARCHS (default 90a), PRHS_CHECK_PREFILL (400), PRHS_CHECK_STEPS (40), PRHS_CHECK_OUT (build folder).
# The last line printed is "prhs_engine_check: PASS|FAIL ..."; exit 0 pass, 1 fail, 2 build/setup error.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "check_prhs_engine: FAIL: $*"; exit 2; }

cuda=${REPO_LENS_CUDA:-1}
archs=${REPO_LENS_CUDA_ARCHS:-90a}
out=${PRHS_CHECK_OUT:-${TMPDIR:-/tmp}/repo-lens-prhs-engine-check}  # not native/build: node-gyp rebuild wipes it
specs=(.carry/gpu-forward/stories260K.spec .carry/gpu-forward/llama3.spec .carry/gpu-forward/qwen2.spec .carry/gpu-forward/mistral.spec)

if [ "${1:-}" != --build ]; then  # before the build: a missing spec should not cost a build
  for s in "${specs[@]}"; do
    [ -f "$s" ] || fail "$s is missing: run node --import tsx bench/gpu/forward-specs.ts where Node is, and carry .carry/gpu-forward"
  done
fi
if [ "$cuda" != 0 ]; then
  command -v nvcc >/dev/null || [ ! -x /usr/local/cuda/bin/nvcc ] || PATH=$PATH:/usr/local/cuda/bin
  command -v nvcc >/dev/null || fail "nvcc not found on PATH (or set REPO_LENS_CUDA=0 for the CPU-only emulated check)"
  echo "check_prhs_engine: $(nvcc --version | tail -n 2 | head -n 1), sm_${archs// /, sm_}"
fi
mkdir -p "$out"
cxxflags=(-std=c++17 -O2 -fPIC -Inative)
[ "$cuda" = 0 ] || cxxflags+=(-DREPO_LENS_CUDA=1)
gencode=()
for a in $archs; do gencode+=("-gencode=arch=compute_$a,code=sm_$a"); done

pids=()
objs=()
logs=()
compile() {  # compile LOG OBJ COMMAND...: in the background, its output in LOG
  local log=$1 obj=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  objs+=("$obj")
  logs+=("$log")
}
for src in native/model/*.cc native/kv/*.cc native/cpu/*.cc native/prhs/*.cc bench/gpu/prhs_engine_check.cc; do
  case "$src" in *_napi.cc) continue ;; esac  # the N-API glue needs Node's headers
  obj="$out/$(echo "$src" | tr / _).o"
  if [ "$cuda" != 0 ] && [ "$src" = bench/gpu/prhs_engine_check.cc ]; then
    compile "$obj.log" "$obj" nvcc -std=c++17 -O2 -Xcompiler -fPIC -Inative -DREPO_LENS_CUDA=1 -c "$src" -o "$obj"
  else
    compile "$obj.log" "$obj" g++ "${cxxflags[@]}" -c "$src" -o "$obj"
  fi
done
if [ "$cuda" != 0 ]; then
  for name in add backend_cuda block_attention_cuda block_bounds chosen_attention cublaslt decode_linear dense_attention embed gemm gemm_cublaslt key_summary kv_append kv_writer matvec matvec_any policy_timing prefill_attention rmsnorm rope rope_kv_append swiglu wgmma gemm_wgmma; do
    obj="$out/cuda_$name.o"
    compile "$obj.log" "$obj" nvcc -std=c++17 -O3 "${gencode[@]}" -Inative -c "native/cuda/$name.cu" -o "$obj"
  done
fi
echo "check_prhs_engine: compiling ${#objs[@]} files in $out"
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "check_prhs_engine: compile error (${objs[$i]}):"
    cat "${logs[$i]}"
    failed=1
  fi
done
[ "$failed" = 0 ] || fail "compilation failed"
if [ "$cuda" != 0 ]; then
  nvcc -o "$out/prhs_engine_check" "${objs[@]}" -lpthread -ldl || fail "link failed"  # -ldl: cublaslt.cu dlopens libcublasLt
else
  g++ -o "$out/prhs_engine_check" "${objs[@]}" -lpthread || fail "link failed"
fi
echo "check_prhs_engine: built $out/prhs_engine_check"
[ "${1:-}" != --build ] || exit 0

peer=cuda
[ "$cuda" != 0 ] || peer=emulated
if [ "$peer" = cuda ] && command -v nvidia-smi >/dev/null; then
  echo "check_prhs_engine: GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n 1)"
fi
status=0
"$out/prhs_engine_check" --peer "$peer" --prefill "${PRHS_CHECK_PREFILL:-400}" --steps "${PRHS_CHECK_STEPS:-40}" "${specs[@]}" || status=$?
echo "check_prhs_engine: exit status $status (0 pass, 1 mismatch, 2 error)"
exit "$status"
