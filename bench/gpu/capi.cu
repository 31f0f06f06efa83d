// A C ABI over the CUDA ops for the Python benchmark/test harness (attention.py loads it with
// ctypes and passes PyTorch tensors' device pointers and its current stream). Every function
// returns 0, or -1 with the message in rl_last_error().
#include <cuda_fp16.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>

#include "add.cuh"
#include "block_select.cuh"
#include "block_summary.cuh"
#include "decode_attention.cuh"
#include "decode_linear.cuh"
#include "chosen_attention.cuh"
#include "cublaslt.cuh"
#include "cuda_check.cuh"
#include "dense_attention.cuh"
#include "embed.cuh"
#include "gemm.cuh"
#include "gemm_cublaslt.cuh"
#include "key_summary.cuh"
#include "kv_append.cuh"
#include "matvec.cuh"
#include "matvec_any.cuh"
#include "prefill_attention.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "rope_kv_append.cuh"
#include "swiglu.cuh"

using namespace rl::cuda;

namespace {
std::string last_error;

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return -1;
  }
}

PagedKvLayer layer(const void* k, const void* v, const void* kmin, const void* kmax, const int* table, int length,
                   int n_kv, int head_dim, int block_size) {
  PagedKvLayer kv;
  kv.k = static_cast<const __half*>(k);
  kv.v = static_cast<const __half*>(v);
  kv.key_min = static_cast<const __half*>(kmin);
  kv.key_max = static_cast<const __half*>(kmax);
  kv.block_table = table;
  kv.length = length;
  kv.n_kv_heads = n_kv;
  kv.head_dim = head_dim;
  kv.block_size = block_size;
  return kv;
}
// The float32 paged KV cache of the CUDA backend's forward pass (k, v: one layer's blocks).
PagedKvF32 layer_f32(float* k, float* v, const int* table, int n_kv, int head_dim, int block_size) {
  PagedKvF32 kv;
  kv.k = k;
  kv.v = v;
  kv.block_table = table;
  kv.n_kv_heads = n_kv;
  kv.head_dim = head_dim;
  kv.block_size = block_size;
  return kv;
}
BlockSelectArgs select_args(const float* q, const PagedKvLayer& kv, int n_heads, float scale, int budget, int sink_blocks,
                            int recent_blocks, int* selected, float* log2_left_out, float* workspace) {
  BlockSelectArgs s;
  s.q = q;
  s.kv = kv;
  s.n_heads = n_heads;
  s.scale = scale;
  s.budget = budget;
  s.sink_blocks = sink_blocks;
  s.recent_blocks = recent_blocks;
  s.fixed_blocks = std::max(0, kv.n_logical() - 1);  // as in a decode step: the append writes the tail's summaries
  s.selected = selected;
  s.log2_left_out = log2_left_out;
  s.workspace = workspace;
  return s;
}
}  // namespace

extern "C" {

const char* rl_last_error() { return last_error.c_str(); }

size_t rl_attention_workspace_floats(int n_heads, int head_dim) {
  return decode_attention_workspace_floats(n_heads, head_dim);
}
size_t rl_select_workspace_floats(int n_kv, int group, int n_logical) {
  return block_select_workspace_floats(n_kv, group, n_logical);
}

int rl_dense_attention(const float* q, const void* k, const void* v, const int* table, int length, int n_heads,
                       int n_kv, int head_dim, int block_size, float scale, float* out, float* lse, float* workspace,
                       void* stream) {
  return guarded([&] {
    DecodeAttentionArgs a;
    a.q = q;
    a.kv = layer(k, v, nullptr, nullptr, table, length, n_kv, head_dim, block_size);
    a.n_heads = n_heads;
    a.scale = scale;
    a.out = out;
    a.lse = lse;
    a.workspace = workspace;
    decode_attention(a, static_cast<cudaStream_t>(stream));
  });
}

int rl_block_summaries(const void* k, const int* table, int length, int n_kv, int head_dim, int block_size,
                       void* kmin, void* kmax, void* stream) {
  return guarded([&] {
    const PagedKvLayer kv = layer(k, nullptr, nullptr, nullptr, table, length, n_kv, head_dim, block_size);
    update_block_summaries(kv, 0, kv.n_logical(), static_cast<__half*>(kmin), static_cast<__half*>(kmax),
                           static_cast<cudaStream_t>(stream));
  });
}

// The PrHS selection alone (scores, top-k, left-out bound): its share of rl_sparse_attention's time.
int rl_block_select(const float* q, const void* kmin, const void* kmax, const int* table, int length, int n_heads, int n_kv,
                    int head_dim, int block_size, float scale, int budget, int sink_blocks, int recent_blocks, int* selected,
                    float* log2_left_out, float* select_workspace, void* stream) {
  return guarded([&] {
    const PagedKvLayer kv = layer(nullptr, nullptr, kmin, kmax, table, length, n_kv, head_dim, block_size);
    block_select(select_args(q, kv, n_heads, scale, budget, sink_blocks, recent_blocks, selected, log2_left_out,
                             select_workspace),
                 static_cast<cudaStream_t>(stream));
  });
}

// One PrHS step: select (scores + top-k + left-out bound), then attend to the selected blocks.
int rl_sparse_attention(const float* q, const void* k, const void* v, const void* kmin, const void* kmax,
                        const int* table, int length, int n_heads, int n_kv, int head_dim, int block_size,
                        float scale, int budget, int sink_blocks, int recent_blocks, int* selected,
                        float* log2_left_out, float* select_workspace, float* out, float* lse, float* delta_bound,
                        float* attention_workspace, void* stream) {
  return guarded([&] {
    const PagedKvLayer kv = layer(k, v, kmin, kmax, table, length, n_kv, head_dim, block_size);
    const BlockSelectArgs s = select_args(q, kv, n_heads, scale, budget, sink_blocks, recent_blocks, selected,
                                          log2_left_out, select_workspace);
    block_select(s, static_cast<cudaStream_t>(stream));

    DecodeAttentionArgs a;
    a.q = q;
    a.kv = kv;
    a.n_heads = n_heads;
    a.scale = scale;
    a.block_list = selected;
    a.list_len = budget < kv.n_logical() ? budget : kv.n_logical();
    a.list_stride = budget;
    const ListReady ready = block_select_list_ready(s);
    a.list_ready = ready.counts;
    a.list_ready_target = ready.target;
    a.log2_left_out = log2_left_out;
    a.out = out;
    a.lse = lse;
    a.delta_bound = delta_bound;
    a.workspace = attention_workspace;
    decode_attention(a, static_cast<cudaStream_t>(stream));
  });
}

// The forward pass's other ops (weight type: 0 F32, 1 F16, 2 BF16).
int rl_matvec(const float* x, int n, const void* w, int type, int rows, int cols, const float* bias, float* y,
              void* stream) {
  return guarded([&] { matvec(x, n, w, WeightType(type), rows, cols, bias, y, static_cast<cudaStream_t>(stream)); });
}
// The prefill GEMM (16-bit weights, rows and cols multiples of 8; any n; precision 0 Float32, 1 Half)
// by our kernels (wgmma's where it runs); rl_gemm_lib by `library` (GemmLibrary: 0 ours, 1 cuBLASLt, 2 cuBLASLt when it
// can) with a workspace of rl_gemm_workspace_bytes. rl_cublaslt_version: 0 when not loadable.
int rl_gemm(const float* x, int n, const void* w, int type, int rows, int cols, const float* bias, float* y, int precision,
            void* stream) {
  return guarded([&] {
    // the workspace our kernels may use (gemm_wgmma's planes of x), kept across calls
    static void* workspace = nullptr;
    static size_t capacity = 0;
    const size_t bytes = gemm_workspace_bytes(GemmLibrary::Own, n, cols, PrefillPrecision(precision));
    if (bytes > capacity) {
      RL_CUDA_CHECK(cudaDeviceSynchronize());
      if (workspace) RL_CUDA_CHECK(cudaFree(workspace));
      RL_CUDA_CHECK(cudaMalloc(&workspace, bytes));
      capacity = bytes;
    }
    gemm(x, n, w, WeightType(type), rows, cols, bias, y, PrefillPrecision(precision), GemmLibrary::Own, bytes ? workspace : nullptr,
         static_cast<cudaStream_t>(stream));
  });
}
int rl_gemm_lib(const float* x, int n, const void* w, int type, int rows, int cols, const float* bias, float* y, int precision,
                int library, void* workspace, void* stream) {
  return guarded([&] {
    gemm(x, n, w, WeightType(type), rows, cols, bias, y, PrefillPrecision(precision), GemmLibrary(library), workspace,
         static_cast<cudaStream_t>(stream));
  });
}
size_t rl_gemm_workspace_bytes(int library, int n, int cols, int precision) {
  return gemm_workspace_bytes(GemmLibrary(library), n, cols, PrefillPrecision(precision));
}
size_t rl_cublaslt_version() { return cublaslt_version(); }
// The Half prefill MLP's pieces (backend_cuda.cu's mlp): y16 = x . W^T in W's 16-bit type by cuBLASLt
// (workspace of rl_gemm_workspace_bytes for library 1, precision 1; an error where cuBLASLt refuses);
// SwiGLU from 16-bit gate and up, rounded; a 16-bit array widened to float32.
int rl_gemm_cublaslt16(const float* x, int n, const void* w, int type, int rows, int cols, void* y16, void* workspace, void* stream) {
  return guarded([&] {
    const GemmProduct product{w, rows, nullptr, static_cast<float*>(y16)};
    if (!gemm_cublaslt(x, n, WeightType(type), cols, &product, 1, workspace, static_cast<cudaStream_t>(stream), true))
      throw std::runtime_error("cuBLASLt did not compute the 16-bit product");
  });
}
int rl_swiglu16_rounded(const void* gate16, const void* up16, int count, void* out16, int type, void* stream) {
  return guarded([&] { swiglu16_rounded(gate16, up16, size_t(count), out16, WeightType(type), static_cast<cudaStream_t>(stream)); });
}
int rl_widen16(const void* in16, int count, float* out, int type, void* stream) {
  return guarded([&] { widen16(in16, size_t(count), out, WeightType(type), static_cast<cudaStream_t>(stream)); });
}
int rl_rmsnorm(const float* x, const void* w, int type, int n, int dim, float eps, float* out, void* stream) {
  return guarded([&] { rmsnorm(x, w, WeightType(type), n, dim, eps, out, static_cast<cudaStream_t>(stream)); });
}
int rl_swiglu(const float* gate, const float* up, int count, float* out, void* stream) {
  return guarded([&] { swiglu(gate, up, size_t(count), out, static_cast<cudaStream_t>(stream)); });
}
int rl_add(float* x, const float* y, int count, void* stream) {
  return guarded([&] { add(x, y, size_t(count), static_cast<cudaStream_t>(stream)); });
}
int rl_rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq, void* stream) {
  return guarded([&] { rope(x, n, heads, head_dim, pos0, inv_freq, static_cast<cudaStream_t>(stream)); });
}
int rl_embed(const void* table, int type, int dim, const int* tokens, int n, float* out, void* stream) {
  return guarded([&] { embed(table, WeightType(type), dim, tokens, n, out, static_cast<cudaStream_t>(stream)); });
}
// The CUDA backend's fallback matvec (any cols), KV append and float32 dense attention.
int rl_matvec_any(const float* x, int n, const void* w, int type, int rows, int cols, const float* bias, float* y,
                  void* stream) {
  return guarded([&] { matvec_any(x, n, w, WeightType(type), rows, cols, bias, y, static_cast<cudaStream_t>(stream)); });
}
int rl_kv_append(float* k_cache, float* v_cache, const int* table, int n_kv, int head_dim, int block_size, int pos0, int n,
                 const float* k, const float* v, void* stream) {
  return guarded([&] {
    kv_append(layer_f32(k_cache, v_cache, table, n_kv, head_dim, block_size), pos0, n, k, v, static_cast<cudaStream_t>(stream));
  });
}
size_t rl_dense_attention_f32_workspace_floats(int n, int n_heads, int head_dim, int pos0) {
  return dense_attention_workspace_floats(n, n_heads, head_dim, pos0);
}
int rl_dense_attention_f32(float* k_cache, float* v_cache, const int* table, int n_kv, int head_dim, int block_size, int pos0,
                           int n, int n_heads, float scale, const float* q, float* out, float* workspace, void* stream) {
  return guarded([&] {
    dense_attention(layer_f32(k_cache, v_cache, table, n_kv, head_dim, block_size), pos0, n, n_heads, scale, q, out,
                    workspace, static_cast<cudaStream_t>(stream));
  });
}

// The CUDA backend's prefill attention (tiled, tensor cores) over the float32 paged cache
// (precision 0 Float32, 1 Half).
size_t rl_prefill_attention_workspace_floats(int n_kv, int head_dim, int block_size, int pos0, int n, int n_heads, int precision) {
  return prefill_attention_workspace_floats(layer_f32(nullptr, nullptr, nullptr, n_kv, head_dim, block_size), pos0, n,
                                            n_heads, PrefillPrecision(precision));
}

// With the layer's fp16 tiles kept apart (PrefillKvTiles: `tiles` of rl_prefill_kv_tiles_halves halves,
// converted from `from` on by this call), or in the workspace where `tiles` is null.
int rl_prefill_kv_tiles_stride(int positions) { return prefill_kv_tiles_stride(positions); }
size_t rl_prefill_kv_tiles_halves(int n_kv, int head_dim, int stride, int precision) {
  return prefill_kv_tiles_halves(n_kv, head_dim, stride, PrefillPrecision(precision));
}
size_t rl_prefill_attention_kept_workspace_floats(int n_kv, int head_dim, int block_size, int pos0, int n, int n_heads, int precision) {
  return prefill_attention_workspace_floats(layer_f32(nullptr, nullptr, nullptr, n_kv, head_dim, block_size), pos0, n,
                                            n_heads, PrefillPrecision(precision), true);
}
int rl_prefill_attention_kept(float* k_cache, float* v_cache, const int* table, int n_kv, int head_dim, int block_size, int pos0,
                              int n, int n_heads, float scale, const float* q, float* out, float* workspace, int precision,
                              void* tiles, int stride, int from, void* stream) {
  return guarded([&] {
    PrefillKvTiles kept;
    kept.kv16 = static_cast<__half*>(tiles);
    kept.stride = stride;
    kept.from = from;
    prefill_attention(layer_f32(k_cache, v_cache, table, n_kv, head_dim, block_size), pos0, n, n_heads, scale, q, out,
                      workspace, PrefillPrecision(precision), static_cast<cudaStream_t>(stream), tiles ? &kept : nullptr);
  });
}
int rl_prefill_attention(float* k_cache, float* v_cache, const int* table, int n_kv, int head_dim, int block_size, int pos0,
                         int n, int n_heads, float scale, const float* q, float* out, float* workspace, int precision,
                         void* stream) {
  return rl_prefill_attention_kept(k_cache, v_cache, table, n_kv, head_dim, block_size, pos0, n, n_heads, scale, q, out,
                                   workspace, precision, nullptr, 0, 0, stream);
}

int rl_chosen_attention_add(float* k_cache, float* v_cache, const int* table, int n_kv, int head_dim, int block_size, int kv_head,
                            int context, const int* blocks, int n_blocks, int head0, int group, float scale, const float* q, int fresh,
                            float* state, void* stream) {
  return guarded([&] {
    chosen_attention_add(layer_f32(k_cache, v_cache, table, n_kv, head_dim, block_size), kv_head, context, blocks, n_blocks, head0,
                         group, scale, q, fresh != 0, state, static_cast<cudaStream_t>(stream));
  });
}
int rl_chosen_attention_write(const float* state, int group, int head_dim, float* out, void* stream) {
  return guarded([&] { chosen_attention_write(state, group, head_dim, out, static_cast<cudaStream_t>(stream)); });
}

// The fused decode products (decode_linear.cuh): mode 0 store (parts 1..3), 1 add, 2 swiglu (gate, up);
// norm may be null; split 0 = decode_linear's choice; variant 0 = the backend's kernel (others: timing).
int rl_decode_linear(const float* x, int n, int cols, const float* norm, float eps, int mode, int type, int parts, const void* w0,
                     const float* b0, float* y0, int rows0, const void* w1, const float* b1, float* y1, int rows1, const void* w2,
                     const float* b2, float* y2, int rows2, int split, int variant, void* stream) {
  return guarded([&] {
    DecodeLinearArgs a;
    a.x = x;
    a.n = n;
    a.cols = cols;
    a.norm = norm;
    a.eps = eps;
    a.mode = DecodeLinearMode(mode);
    a.type = WeightType(type);
    a.parts = parts;
    a.part[0] = {w0, b0, y0, rows0};
    a.part[1] = {w1, b1, y1, rows1};
    a.part[2] = {w2, b2, y2, rows2};
    a.split = split;
    decode_linear_variant(a, variant, static_cast<cudaStream_t>(stream));
  });
}
// RoPE of q and k with the KV append and key summaries in one launch (rope_kv_append.cuh).
int rl_rope_kv_append(float* q, int n_heads, float* k, const float* v, float* k_cache, float* v_cache, const int* table, int n_kv,
                      int head_dim, int block_size, float* summary, int pos0, int n, int length, const float* inv_freq, float* staged,
                      void* stream) {
  return guarded([&] {
    rope_kv_append(q, n_heads, k, v, layer_f32(k_cache, v_cache, table, n_kv, head_dim, block_size), summary, pos0, n, length,
                   inv_freq, staged, nullptr, static_cast<cudaStream_t>(stream));
  });
}
// The unfused key summary update (key_summary.cuh), the reference for rl_rope_kv_append's.
int rl_key_summary_append(float* summary, const int* table, int n_kv, int head_dim, int block_size, int pos0, int n, int length,
                          const float* k, void* stream) {
  return guarded([&] {
    key_summary_append(summary, table, n_kv, head_dim, block_size, pos0, n, length, k, static_cast<cudaStream_t>(stream));
  });
}

}  // extern "C"
