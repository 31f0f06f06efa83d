#!/bin/sh
# Builds bench/gpu/forward_check (the CPU and CUDA forward passes against transformers, no Node.js)
# from the native sources: g++ for the C++ (model, kv, cpu, prhs), nvcc for the CUDA ops the CUDA
# backend uses. REPO_LENS_CUDA_ARCHS (default 90a) picks the GPU code; REPO_LENS_CUDA=0 builds CPU only;
# REPO_LENS_HOST_SAMPLER=1 links bench/gpu/host_sampler.cc (a sampling profiler of the host thread).
#   sh bench/gpu/build_forward_check.sh [OUT_DIR]   (run from the repository root)
set -eu
out=${1:-native/build/forward_check}
archs=${REPO_LENS_CUDA_ARCHS:-90a}
mkdir -p "$out"
cxxflags="-std=c++17 -O3 -fPIC -Inative"
pids=""
objs=""
for src in native/model/*.cc native/kv/*.cc native/cpu/*.cc native/prhs/*.cc bench/gpu/forward_check.cc; do
  case "$src" in *_napi.cc) continue ;; esac  # the N-API glue needs Node's headers
  obj="$out/$(echo "$src" | tr / _).o"
  defs=""
  [ "${REPO_LENS_CUDA:-1}" = 0 ] || defs="-DREPO_LENS_CUDA=1"
  compile="g++ $cxxflags"
  # the driver's timing mode calls the CUDA runtime: nvcc brings its headers
  [ -z "$defs" ] || [ "$src" != bench/gpu/forward_check.cc ] || compile="nvcc -std=c++17 -O3 -Xcompiler -fPIC -Inative"
  $compile $defs -c "$src" -o "$obj" & pids="$pids $!"
  objs="$objs $obj"
done
if [ "${REPO_LENS_CUDA:-1}" != 0 ]; then
  gencode=""
  for a in $archs; do gencode="$gencode -gencode=arch=compute_$a,code=sm_$a"; done
  for name in add backend_cuda block_attention_cuda block_bounds chosen_attention cublaslt decode_linear dense_attention embed gemm gemm_cublaslt key_summary kv_append kv_writer matvec matvec_any policy_timing prefill_attention rmsnorm rope rope_kv_append swiglu wgmma gemm_wgmma; do
    obj="$out/cuda_$name.o"
    nvcc -std=c++17 -O3 $gencode -Inative -c "native/cuda/$name.cu" -o "$obj" & pids="$pids $!"
    objs="$objs $obj"
  done
fi
for p in $pids; do wait "$p"; done
if [ "${REPO_LENS_CUDA:-1}" != 0 ]; then
  if [ "${REPO_LENS_HOST_SAMPLER:-0}" = 1 ]; then  # host_sampler.cc's profiler (RL_SAMPLE=<us> at run time)
    g++ -O2 -c bench/gpu/host_sampler.cc -o "$out/host_sampler.o"
    nvcc -o "$out/forward_check" $objs "$out/host_sampler.o" -lpthread -ldl -lrt -Xlinker -export-dynamic
  else
    nvcc -o "$out/forward_check" $objs -lpthread -ldl  # -ldl: cublaslt.cu dlopens libcublasLt
  fi
else
  g++ -o "$out/forward_check" $objs -lpthread
fi
echo "$out/forward_check"
