// What bandwidth the PrHS operator's reads can reach on their own, at 128K positions of the
// Llama-3-8B layer shape: the score kernel's summary rows (16.8 MB, cp.async into shared memory,
// laid out and split over CTAs in several ways) and the partial kernel's K/V tiles of 205 random
// blocks a KV head (26.8 MB). Each is timed as a CUDA graph of 24 launches over input copies beyond L2.
//   nvcc -std=c++17 -O3 -arch=sm_90a -Inative/cuda bench/gpu/read_patterns.cu -o read_patterns && ./read_patterns
#include <cuda_fp16.h>
#include <cstdio>
#include <vector>
#include <algorithm>
#include <random>
#include "device_util.cuh"
using namespace rl::cuda;
constexpr int NKV = 8, D = 128, BS = 32;

// head-major: CTA (chunk, kvh): per_cta blocks' min+max rows of head kvh. 256 threads.
__global__ void __launch_bounds__(256, 2) head_major(const __half* mn, const __half* mx, const int* table, int n, int per_cta, float* sink) {
  extern __shared__ uint4 rows[];
  const int kvh = blockIdx.y, first = blockIdx.x * per_cta;
  const int copies = per_cta * 2 * 16 / 256;
  for (int r = 0; r < copies; ++r) {
    const int e = threadIdx.x + r * 256, local = e / 32, side = e / 16 % 2, c = e % 16, b = first + local;
    if (b < n) { const int p = table[b]; cp_async16(rows + e, (side ? mx : mn) + (size_t(p) * NKV + kvh) * D + c * 8); }
  }
  cp_async_commit(); cp_async_wait<0>(); __syncthreads();
  if (threadIdx.x == 0) sink[blockIdx.y * gridDim.x + blockIdx.x] = __half2float(reinterpret_cast<__half*>(rows)[5]);
}
// block-major: CTA takes per_cta blocks, all heads: contiguous 2 KB min + 2 KB max per block.
__global__ void __launch_bounds__(256, 2) block_major(const __half* mn, const __half* mx, const int* table, int n, int per_cta, float* sink) {
  extern __shared__ uint4 rows[];
  const int first = blockIdx.x * per_cta;
  const int copies = per_cta * 2 * NKV * 16 / 256;
  for (int r = 0; r < copies; ++r) {
    const int e = threadIdx.x + r * 256, local = e / (2 * NKV * 16), side = e / (NKV * 16) % 2, c = e % (NKV * 16), b = first + local;
    if (b < n) { const int p = table[b]; cp_async16(rows + e, (side ? mx : mn) + size_t(p) * NKV * D + c * 8); }
  }
  cp_async_commit(); cp_async_wait<0>(); __syncthreads();
  if (threadIdx.x == 0) sink[blockIdx.x] = __half2float(reinterpret_cast<__half*>(rows)[5]);
}
// interleaved layout: min and max of (phys, kvh) adjacent (512 B), head-major CTAs.
__global__ void __launch_bounds__(256, 2) head_major_adj(const __half* mm, const int* table, int n, int per_cta, float* sink) {
  extern __shared__ uint4 rows[];
  const int kvh = blockIdx.y, first = blockIdx.x * per_cta;
  const int copies = per_cta * 2 * 16 / 256;
  for (int r = 0; r < copies; ++r) {
    const int e = threadIdx.x + r * 256, local = e / 32, c = e % 32, b = first + local;
    if (b < n) { const int p = table[b]; cp_async16(rows + e, mm + (size_t(p) * NKV + kvh) * 2 * D + c * 8); }
  }
  cp_async_commit(); cp_async_wait<0>(); __syncthreads();
  if (threadIdx.x == 0) sink[blockIdx.y * gridDim.x + blockIdx.x] = __half2float(reinterpret_cast<__half*>(rows)[5]);
}
// partial pattern: CTA (split, kvh), 4 warps, warp w takes list[begin + w + 4 i]: K and V tiles 8 KB each.
template <int WARPS>
__global__ void partial_pat(const __half* k, const __half* v, const int* table, const int* list, int list_len, int per_split, float* sink) {
  extern __shared__ uint4 tiles[];
  const int kvh = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int begin = blockIdx.x * per_split, end = min(begin + per_split, list_len);
  uint4* my = tiles + warp * 2 * 512;
  float acc = 0.f;
  for (int pos = begin + warp; pos < end; pos += WARPS) {
    const int p = table[list[kvh * list_len + pos]];
    const size_t off = (size_t(p) * NKV + kvh) * BS * D;
    for (int i = lane; i < 512; i += 32) { cp_async16(my + i, k + off + i * 8); cp_async16(my + 512 + i, v + off + i * 8); }
    cp_async_commit(); cp_async_wait<0>(); __syncwarp();
    acc += __half2float(reinterpret_cast<__half*>(my)[lane]);
    __syncwarp();
  }
  if (lane == 0) sink[(blockIdx.y * gridDim.x + blockIdx.x) * WARPS + warp] = acc;
}
__global__ void contiguous(const uint4* src, size_t n16, float* sink) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n16; i += size_t(gridDim.x) * blockDim.x) acc ^= src[i].x;
  if (acc == 12345) sink[0] = 1.f;
}

int main() {
  const int T = 131072, n = T / BS, copies = 6;
  std::mt19937 rng(1);
  std::vector<int> perm(n); for (int i = 0; i < n; ++i) perm[i] = i; std::shuffle(perm.begin(), perm.end(), rng);
  int *d_table, *d_ident; cudaMalloc(&d_table, n * 4); cudaMalloc(&d_ident, n * 4);
  cudaMemcpy(d_table, perm.data(), n * 4, cudaMemcpyHostToDevice);
  std::vector<int> id(n); for (int i = 0; i < n; ++i) id[i] = i; cudaMemcpy(d_ident, id.data(), n * 4, cudaMemcpyHostToDevice);
  const size_t sum_elems = size_t(n) * NKV * D;  // one of min / max
  std::vector<__half*> mn(copies), mx(copies), mm(copies), kk(copies), vv(copies);
  const size_t kv_elems = size_t(n) * NKV * BS * D;
  for (int c = 0; c < copies; ++c) {
    cudaMalloc(&mn[c], sum_elems * 2); cudaMalloc(&mx[c], sum_elems * 2); cudaMalloc(&mm[c], sum_elems * 4);
    cudaMemset(mn[c], 0, sum_elems * 2); cudaMemset(mx[c], 0, sum_elems * 2); cudaMemset(mm[c], 0, sum_elems * 4);
  }
  for (int c = 0; c < 2; ++c) { cudaMalloc(&kk[c], kv_elems * 2); cudaMalloc(&vv[c], kv_elems * 2); cudaMemset(kk[c], 0, kv_elems * 2); cudaMemset(vv[c], 0, kv_elems * 2); }
  // sparse list: 205 random blocks a head, ascending
  const int L = 205, LISTS = 6; std::vector<int> list(LISTS * NKV * L);
  for (int h = 0; h < NKV * LISTS; ++h) { std::vector<int> p(n); for (int i = 0; i < n; ++i) p[i] = i; std::shuffle(p.begin(), p.end(), rng); std::sort(p.begin(), p.begin() + L); for (int i = 0; i < L; ++i) list[h * L + i] = p[i]; }
  int* d_list; cudaMalloc(&d_list, list.size() * 4); cudaMemcpy(d_list, list.data(), list.size() * 4, cudaMemcpyHostToDevice);
  float* sink; cudaMalloc(&sink, 1 << 20);
  cudaFuncSetAttribute(head_major, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
  cudaFuncSetAttribute(block_major, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
  cudaFuncSetAttribute(head_major_adj, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
  cudaFuncSetAttribute(partial_pat<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024);
  cudaFuncSetAttribute(partial_pat<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, 16 * 1024);
  cudaFuncSetAttribute(partial_pat<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, 32 * 1024);
  cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
  auto time_reads = [&](const char* name, double bytes, auto launch) {
    for (int w = 0; w < 3; ++w) launch(w % copies);
    cudaGraph_t g; cudaGraphExec_t ge; cudaStream_t s; cudaStreamCreate(&s);
    const int reps = 24;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    for (int r = 0; r < reps; ++r) launch(r % copies, s);
    cudaStreamEndCapture(s, &g); cudaGraphInstantiate(&ge, g, 0);
    cudaGraphLaunch(ge, s); cudaStreamSynchronize(s);
    float best = 1e9;
    for (int t = 0; t < 5; ++t) { cudaEventRecord(a, s); cudaGraphLaunch(ge, s); cudaEventRecord(b, s); cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms, a, b); best = std::min(best, ms); }
    const double us = best * 1000 / reps;
    printf("%-40s %7.2f us  %6.2f TB/s  (%s)\n", name, us, bytes / us / 1e6, cudaGetErrorString(cudaGetLastError()));
  };
  const double summary_bytes = 2.0 * sum_elems * 2;
  for (int per : {128, 64}) {
    for (int shuffled = 1; shuffled >= 0; --shuffled) {
      const int* t = shuffled ? d_table : d_ident;
      char nm[80];
      snprintf(nm, 80, "head_major per%d %s", per, shuffled ? "shuf" : "ident");
      time_reads(nm, summary_bytes, [&](int c, cudaStream_t s = 0) { head_major<<<dim3(n / per, NKV), 256, per * 512, s>>>(mn[c], mx[c], t, n, per, sink); });
      snprintf(nm, 80, "head_major_adj per%d %s", per, shuffled ? "shuf" : "ident");
      time_reads(nm, summary_bytes, [&](int c, cudaStream_t s = 0) { head_major_adj<<<dim3(n / per, NKV), 256, per * 512, s>>>(mm[c], t, n, per, sink); });
      snprintf(nm, 80, "block_major per%d %s", per / 8, shuffled ? "shuf" : "ident");
      time_reads(nm, summary_bytes, [&](int c, cudaStream_t s = 0) { block_major<<<dim3(n / (per / 8)), 256, per * 512, s>>>(mn[c], mx[c], t, n, per / 8, sink); });
    }
  }
  for (int blocks : {264, 528, 1056})
  { char nm[80]; snprintf(nm, 80, "contiguous summaries %d CTAs", blocks);
    time_reads(nm, summary_bytes, [&](int c, cudaStream_t s = 0) { contiguous<<<blocks, 512, 0, s>>>(reinterpret_cast<const uint4*>(mm[c]), size_t(summary_bytes / 16), sink); }); }
  const double tile_bytes = double(NKV) * L * BS * D * 2 * 2;
  for (int per : {5, 4, 8}) {
    char nm[80]; snprintf(nm, 80, "partial w4 per_split %d", per);
    const int splits = (L + per - 1) / per;
    time_reads(nm, tile_bytes, [&](int c, cudaStream_t s = 0) { partial_pat<4><<<dim3(splits, NKV), 128, 65536, s>>>(kk[c % 2], vv[c % 2], d_table, d_list + (c % LISTS) * NKV * L, L, per, sink); });
  }
  for (int per : {1, 2}) {
    char nm[80]; snprintf(nm, 80, "partial w1 per_split %d", per);
    time_reads(nm, tile_bytes, [&](int c, cudaStream_t s = 0) { partial_pat<1><<<dim3((L + per - 1) / per, NKV), 32, 16384, s>>>(kk[c % 2], vv[c % 2], d_table, d_list + (c % LISTS) * NKV * L, L, per, sink); });
    snprintf(nm, 80, "partial w2 per_split %d", 2 * per);
    time_reads(nm, tile_bytes, [&](int c, cudaStream_t s = 0) { partial_pat<2><<<dim3((L + 2 * per - 1) / (2 * per), NKV), 64, 32768, s>>>(kk[c % 2], vv[c % 2], d_table, d_list + (c % LISTS) * NKV * L, L, 2 * per, sink); });
  }
  printf("done\n");
}
