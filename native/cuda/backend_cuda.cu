#include "backend_cuda.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "add.cuh"
#include "block_attention_cuda.cuh"
#include "block_bounds.cuh"
#include "chosen_attention.cuh"
#include "cublaslt.cuh"
#include "cuda_check.cuh"
#include "decode_linear.cuh"
#include "dense_attention.cuh"
#include "embed.cuh"
#include "gemm.cuh"
#include "gemm_cublaslt.cuh"
#include "key_summary.cuh"
#include "kv/kv_cache.h"
#include "prhs/block_attention.h"
#include "kv_append.cuh"
#include "kv_writer.cuh"
#include "matvec.cuh"
#include "matvec_any.cuh"
#include "policy_timing.h"
#include "prefill_attention.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "rope_kv_append.cuh"
#include "switches.h"
#include "swiglu.cuh"

namespace rl::cuda {
namespace {

WeightType weight_type(DType t) {
  switch (t) {
    case DType::F16: return WeightType::F16;
    case DType::BF16: return WeightType::BF16;
    default: return WeightType::F32;
  }
}

// A device allocation freed with the backend.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { RL_CUDA_CHECK(cudaMalloc(&ptr, bytes == 0 ? 1 : bytes)); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Pinned host memory freed with the backend.
struct PinnedBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (ptr) cudaFreeHost(ptr);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void reset(size_t n) {
    if (ptr) RL_CUDA_CHECK(cudaFreeHost(ptr));
    ptr = nullptr;
    bytes = 0;
    RL_CUDA_CHECK(cudaHostAlloc(&ptr, n, cudaHostAllocDefault));
    bytes = n;
  }
};

// Pinned host memory for the deferred KV write-through (CudaBackend::kv_write): the writes copied
// into it on the stream, and an event recorded after the last of those copies. A decode step's
// writes are first gathered by its kernels into the device copy at the same offsets and copied over
// once (copy_pending): a copy on the stream between two kernels costs ~10 us a layer on the H100.
struct KvStaging {
  struct Write {
    int seq, layer, pos0, n;
    size_t at;  // keys [n][kv_heads][head_dim] at host + at, the values right after them
  };
  static constexpr size_t kNonePending = ~size_t(0);
  PinnedBuffer pinned;
  std::unique_ptr<DeviceBuffer> device;  // as many floats as `pinned`, once a write is gathered there
  size_t used = 0;                       // floats
  size_t pending_from = kNonePending;    // [pending_from, used) written on the device, not yet copied
  bool sealed = false;                   // `copied` recorded after every copy into it
  std::vector<Write> writes;
  cudaEvent_t copied = nullptr;

  KvStaging() = default;
  ~KvStaging() {
    if (copied) cudaEventDestroy(copied);
  }
  KvStaging(const KvStaging&) = delete;
  KvStaging& operator=(const KvStaging&) = delete;

  float* host() const { return static_cast<float*>(pinned.ptr); }
  float* on_device() const { return static_cast<float*>(device->ptr); }
  size_t capacity() const { return pinned.bytes / sizeof(float); }  // floats
  bool has_device_copy() const { return device != nullptr; }
  // Room for at least `floats` (and its device copy when asked); only while empty (the stream may
  // still be copying into it otherwise).
  void reserve(size_t floats, bool with_device) {
    if (!copied) RL_CUDA_CHECK(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
    if (capacity() < floats) {
      pinned.reset(floats * sizeof(float));
      device.reset();
    }
    if (with_device && !device) device = std::make_unique<DeviceBuffer>(pinned.bytes);
  }
  // Empty again: after its writes were applied, or dropped unapplied (a failed flush).
  void clear() {
    writes.clear();
    used = 0;
    pending_from = kNonePending;
    sealed = false;
  }
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(PrefillPrecision prefill) : prefill_(prefill) {
    RL_CUDA_CHECK(cudaSetDevice(0));
    RL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    // REPO_LENS_CUDA_SIDE_COPIES=0: the sparse decode's small copies (q to the host, the chosen
    // blocks' ids to the device) on the stream, between its kernels, as before (A/B timing).
    if (switched_on("REPO_LENS_CUDA_SIDE_COPIES")) RL_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
    // REPO_LENS_CUDA_SKETCH_APART=0: the sketches ahead on the stream (BlockBoundsLayer::sketch_stream).
    if (switched_on("REPO_LENS_CUDA_SKETCH_APART")) RL_CUDA_CHECK(cudaStreamCreateWithFlags(&sketch_stream_, cudaStreamNonBlocking));
    // REPO_LENS_CUDA_COPY_STREAM=0: the write-through's copies to the host on the stream, between its kernels.
    if (switched_on("REPO_LENS_CUDA_COPY_STREAM")) {
      RL_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
      RL_CUDA_CHECK(cudaEventCreateWithFlags(&gathered_, cudaEventDisableTiming));
    }
    // cuBLASLt computes the Half prefill's GEMM when it is installed (REPO_LENS_CUBLASLT: cublaslt.cuh).
    if (prefill_ == PrefillPrecision::Half && cublaslt_version() != 0) gemm_library_ = GemmLibrary::Auto;
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : bounds_copied_) cudaEventDestroy(e);
    for (cudaEvent_t e : attention_copied_) cudaEventDestroy(e);
    for (cudaEvent_t e : attention_sent_) cudaEventDestroy(e);
    for (cudaEvent_t e : query_copied_) cudaEventDestroy(e);
    for (cudaEvent_t e : attention_consumed_) cudaEventDestroy(e);
    if (side_) cudaStreamSynchronize(side_), cudaStreamDestroy(side_);
    if (sketch_stream_) cudaStreamSynchronize(sketch_stream_), cudaStreamDestroy(sketch_stream_);
    if (copy_stream_) cudaStreamSynchronize(copy_stream_), cudaStreamDestroy(copy_stream_), cudaEventDestroy(gathered_);
    for (cudaEvent_t e : bounds_sketched_) cudaEventDestroy(e);
    for (int i = 0; i < kLogitsPieces; i++) {
      for (cudaEvent_t e : {logits_pieces_.computed[i], logits_pieces_.copied[i]}) if (e) cudaEventDestroy(e);
    }
    buffers_.clear();
    cudaStreamDestroy(stream_);
  }

  const char* name() const override { return "cuda"; }
  std::string detail() const override {
    if (gemm_library_ == GemmLibrary::Own) return "";
    const size_t v = cublaslt_version();  // e.g. 130100 for 13.1.0; 0 once a call failed (our kernel since)
    if (v == 0) return "";
    return "prefill GEMM on cuBLASLt " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  }

  float* alloc(size_t count) override { return static_cast<float*>(device(count * sizeof(float))); }

  // Small copies (a decode step's q, its logits) through pinned memory: a pageable destination
  // costs the driver a staging copy of its own; large ones (a prefill's logits) go direct.
  static constexpr size_t kBounceFloats = size_t(1) << 18;  // 1 MB
  void copy_to_host(const float* src, size_t count, float* dst) override {
    if (src == logits_pieces_.y && count == logits_pieces_.count) return take_logits_pieces(dst);
    settle_logits_pieces();  // the bounce is reused below
    if (count > kBounceFloats) {
      RL_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
      RL_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return;
    }
    float* bounce = static_cast<float*>(pinned_scratch(copy_bounce_, kBounceFloats * sizeof(float)));
    RL_CUDA_CHECK(cudaMemcpyAsync(bounce, src, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    RL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(dst, bounce, count * sizeof(float));
  }

  // A decode step's logits in kLogitsPieces products of consecutive rows. After each, its rows go to
  // the pinned bounce on copy_stream_, so the copy and the host's memcpy of the first pieces run while
  // the later ones are computed: the step then ends one piece's copy after the product, not the whole
  // copy and memcpy (~60 us of a 2.5 ms step on the H100). REPO_LENS_CUDA_LOGITS_PIECES=0: one product.
  static constexpr int kLogitsPieces = 4;
  struct LogitsPieces {
    const float* y = nullptr;  // the product whose pieces are on their way to the bounce; null: none
    size_t count = 0;
    int copies = 0;  // pieces whose copy is enqueued
    int first_row[kLogitsPieces + 1] = {};
    cudaEvent_t computed[kLogitsPieces] = {}, copied[kLogitsPieces] = {};
  };
  void matmul_for_host(const float* x, int n, const Weight& w, float* y) override {
    settle_logits_pieces();
    static const bool pieces = switched_on("REPO_LENS_CUDA_LOGITS_PIECES");
    const bool split = pieces && copy_stream_ && n == 1 && decode_linear_takes(n, w) &&
                       w.rows >= kLogitsPieces * 8 && size_t(w.rows) <= kBounceFloats;
    if (!split) return matmul(x, n, w, nullptr, y);
    LogitsPieces& lp = logits_pieces_;
    float* bounce = static_cast<float*>(pinned_scratch(copy_bounce_, kBounceFloats * sizeof(float)));
    const DecodeLinearArgs whole = linear_args(x, n, DecodeLinearMode::Store, nullptr, 0.f, {{&w, nullptr, y}});
    const size_t row_bytes = size_t(w.cols) * dtype_bytes(w.dtype);
    for (int i = 0; i < kLogitsPieces; i++) {
      lp.first_row[i] = i * (w.rows / kLogitsPieces / 8) * 8;  // whole CTAs of rows (8 a CTA) but in the last
      for (cudaEvent_t* e : {&lp.computed[i], &lp.copied[i]}) {
        if (!*e) RL_CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
      }
    }
    lp.first_row[kLogitsPieces] = w.rows;
    lp.y = y;
    lp.count = size_t(w.rows);
    lp.copies = 0;
    for (int i = 0; i < kLogitsPieces; i++) {
      const int row = lp.first_row[i], rows = lp.first_row[i + 1] - row;
      DecodeLinearArgs a = whole;
      a.part[0].w = static_cast<const char*>(whole.part[0].w) + size_t(row) * row_bytes;
      a.part[0].y = y + row;
      a.part[0].rows = rows;
      decode_linear(a, stream_);
      RL_CUDA_CHECK(cudaEventRecord(lp.computed[i], stream_));
      RL_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, lp.computed[i], 0));
      RL_CUDA_CHECK(cudaMemcpyAsync(bounce + row, y + row, size_t(rows) * sizeof(float), cudaMemcpyDeviceToHost, copy_stream_));
      RL_CUDA_CHECK(cudaEventRecord(lp.copied[i], copy_stream_));
      lp.copies = i + 1;
    }
  }
  void take_logits_pieces(float* dst) {
    LogitsPieces& lp = logits_pieces_;
    const float* bounce = static_cast<const float*>(copy_bounce_.ptr);
    lp.y = nullptr;
    if (lp.copies != kLogitsPieces) throw std::logic_error("cuda: the logits' pieces were not all launched");
    for (int i = 0; i < kLogitsPieces; i++) {
      RL_CUDA_CHECK(cudaEventSynchronize(lp.copied[i]));
      const int row = lp.first_row[i];
      std::memcpy(dst + row, bounce + row, size_t(lp.first_row[i + 1] - row) * sizeof(float));
    }
  }
  // Pieces nobody took (an error between the product and its copy): their copies into the bounce end first.
  void settle_logits_pieces() {
    LogitsPieces& lp = logits_pieces_;
    if (!lp.y) return;
    lp.y = nullptr;
    if (lp.copies > 0) RL_CUDA_CHECK(cudaEventSynchronize(lp.copied[lp.copies - 1]));  // the copies run in order
  }

  void embed(const Weight& table, const int32_t* tokens, int n, float* out) override {
    int32_t* d_tokens = static_cast<int32_t*>(scratch(tokens_, n * sizeof(int32_t)));
    RL_CUDA_CHECK(cudaMemcpyAsync(d_tokens, tokens, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
    cuda::embed(upload(table), weight_type(table.dtype), table.cols, d_tokens, n, out, stream_);
  }

  void rmsnorm(const float* x, const Weight& weight, int n, float eps, float* out) override {
    cuda::rmsnorm(x, upload(weight), weight_type(weight.dtype), n, weight.cols, eps, out, stream_);
  }

  struct LinearOut {
    const Weight* w;
    const Weight* bias;
    float* y;
  };

  // A prefill chunk runs on the tensor cores (W read once per 64 tokens); decode steps and
  // float32 or odd-shaped weights through the matvec (W read once per 4 tokens).
  // REPO_LENS_CUDA_GEMM=0 takes the matvec for every n (A/B timing and diagnosis). With cuBLASLt
  // loaded (Half only) the GEMM is its products (gemm_library_), our kernel where it has no algorithm.
  static constexpr int kGemmMinTokens = 16;
  // 2048 rather than 1024: the whole prefill of the 1.5B shape 7-9 % faster in both precisions on an
  // H100, ~130 MB more on the device (bench/gpu/NOTES.md, session 16).
  // REPO_LENS_CUDA_PREFILL_CHUNK=N: another size (A/B timing).
  int prefill_chunk() const override {
    static const int chunk = [] {
      const char* v = std::getenv("REPO_LENS_CUDA_PREFILL_CHUNK");
      return v && std::atoi(v) >= 64 ? std::atoi(v) : 2048;
    }();
    return chunk;
  }

  static bool gemm_takes(int n, const Weight& w) {
    static const bool gemm_enabled = switched_on("REPO_LENS_CUDA_GEMM");
    return gemm_enabled && n >= kGemmMinTokens && gemm_supports(weight_type(w.dtype), w.rows, w.cols);
  }

  // The GEMM's workspace for n tokens of `cols` values (null where it needs none), sized for a whole
  // chunk at once: growing it costs a sync and a cudaMalloc (17 ms on the H100 machine).
  void* gemm_workspace(int n, int cols) {
    const size_t bytes = gemm_workspace_bytes(gemm_library_, std::max(n, prefill_chunk()), cols, prefill_);
    return bytes ? scratch(gemm_workspace_, bytes) : nullptr;
  }

  // `outs` (at most 3) as gemm_products' products, their weights on the device; returns how many.
  int products_of(std::initializer_list<LinearOut> outs, GemmProduct (&products)[3]) {
    int count = 0;
    for (const LinearOut& o : outs) products[count++] = {upload(*o.w), o.w->rows, o.bias ? upload_f32(*o.bias) : nullptr, o.y};
    return count;
  }

  // The GEMM's products of one x, all of one type and width (gemm_takes each).
  void gemm_of(const float* x, int n, std::initializer_list<LinearOut> outs) {
    GemmProduct products[3];
    const int count = products_of(outs, products);
    const Weight& w = *outs.begin()->w;
    gemm_products(x, n, weight_type(w.dtype), w.cols, products, count, prefill_, gemm_library_, gemm_workspace(n, w.cols), stream_);
  }

  // The Half prefill's products on cuBLASLt, where it is loaded.
  bool half_on_cublaslt() const {
    return prefill_ == PrefillPrecision::Half && gemm_library_ != GemmLibrary::Own && cublaslt_version() != 0;
  }

  // xb = rmsnorm(x), then the products of xb (gemm_of) for a prefill chunk on cuBLASLt: rmsnorm also
  // rounds xb where the products read their operand, so no pass of its own rounds it. False, with
  // nothing done, where cuBLASLt would not take them. With `rounded` (no bias), cuBLASLt is asked for
  // the products in W's 16-bit type (each y then holds [n][rows] of them); *rounded says whether it
  // gave them so, or refused and our kernel computed them in float32.
  bool norm_then_products(const float* x, const Weight& norm, float eps, int n, float* xb, std::initializer_list<LinearOut> outs,
                          bool* rounded = nullptr) {
    const Weight& w = *outs.begin()->w;
    if (!half_on_cublaslt() || norm.rows * norm.cols != w.cols) return false;
    for (const LinearOut& o : outs) {
      if (!gemm_takes(n, *o.w) || !same_shape_and_type(*o.w, w)) return false;
    }
    void* workspace = gemm_workspace(n, w.cols);
    const WeightType type = weight_type(w.dtype);
    cuda::rmsnorm_rounded(x, upload(norm), weight_type(norm.dtype), n, w.cols, eps, xb, gemm_cublaslt_x16(workspace), type, stream_);
    GemmProduct products[3];
    const int count = products_of(outs, products);
    const bool done = gemm_cublaslt(nullptr, n, type, w.cols, products, count, workspace, stream_, rounded != nullptr);
    if (!done) gemm_of(xb, n, outs);  // refused: ours
    if (rounded) *rounded = done;
    return true;
  }

  void matmul(const float* x, int n, const Weight& w, const Weight* bias, float* y) override {
    const float* b = bias ? upload_f32(*bias) : nullptr;
    if (gemm_takes(n, w)) {
      gemm_of(x, n, {{&w, bias, y}});
    } else if (decode_linear_takes(n, w)) decode_linear(linear_args(x, n, DecodeLinearMode::Store, nullptr, 0.f, {{&w, bias, y}}), stream_);
    else if (w.cols % 8 == 0) matvec(x, n, upload(w), weight_type(w.dtype), w.rows, w.cols, b, y, stream_);
    else matvec_any(x, n, upload(w), weight_type(w.dtype), w.rows, w.cols, b, y, stream_);
  }

  // The fused decode ops (backend.h) for up to kDecodeLinearMaxTokens tokens: one decode_linear
  // launch each (rmsnorm folded in, q/k/v side by side, the residual add and SwiGLU in the
  // epilogue) and RoPE with the KV append in one; more tokens take the defaults (prefill unchanged).
  // REPO_LENS_CUDA_DECODE_LINEAR=0: the defaults and the old matvec for every n (A/B timing).
  static bool decode_linear_enabled() {
    static const bool enabled = switched_on("REPO_LENS_CUDA_DECODE_LINEAR");
    return enabled;
  }
  static bool decode_linear_takes(int n, const Weight& w) {
    return decode_linear_enabled() && n <= kDecodeLinearMaxTokens && w.cols % 8 == 0;
  }
  DecodeLinearArgs linear_args(const float* x, int n, DecodeLinearMode mode, const Weight* norm, float eps,
                               std::initializer_list<LinearOut> outs) {
    // Each product lets the next kernel be scheduled once its weight loads are issued
    // (DecodeLinearArgs::early_launch): 2-3 % of a decode step on the H100 (bench/gpu/NOTES.md,
    // session 11). REPO_LENS_CUDA_DECODE_EARLY=0 turns it off (A/B timing).
    static const bool early = switched_on("REPO_LENS_CUDA_DECODE_EARLY");
    DecodeLinearArgs a;
    a.early_launch = early;
    a.x = x;
    a.n = n;
    a.cols = outs.begin()->w->cols;
    a.norm = norm ? upload_f32(*norm) : nullptr;
    a.eps = eps;
    a.mode = mode;
    a.type = weight_type(outs.begin()->w->dtype);
    a.parts = 0;
    for (const LinearOut& o : outs) {
      DecodeLinearPart& part = a.part[a.parts++];
      part.w = upload(*o.w);
      part.bias = o.bias ? upload_f32(*o.bias) : nullptr;
      part.y = o.y;
      part.rows = o.w->rows;
    }
    return a;
  }
  static bool same_shape_and_type(const Weight& a, const Weight& b) { return a.cols == b.cols && a.dtype == b.dtype; }

  void norm_qkv(const float* x, const Weight& norm, float eps, int n, const Weight& wq, const Weight* bq, const Weight& wk,
                const Weight* bk, const Weight& wv, const Weight* bv, float* xb, float* q, float* k, float* v) override {
    const std::initializer_list<LinearOut> outs = {{&wq, bq, q}, {&wk, bk, k}, {&wv, bv, v}};
    const bool alike = same_shape_and_type(wq, wk) && same_shape_and_type(wq, wv);
    if (decode_linear_takes(n, wq) && alike && norm.rows * norm.cols == wq.cols) {
      return decode_linear(linear_args(x, n, DecodeLinearMode::Store, &norm, eps, outs), stream_);
    }
    if (norm_then_products(x, norm, eps, n, xb, outs)) return;
    if (alike && gemm_takes(n, wq) && gemm_takes(n, wk) && gemm_takes(n, wv)) {
      rmsnorm(x, norm, n, eps, xb);  // a prefill chunk: the products round xb once
      return gemm_of(xb, n, outs);
    }
    Backend::norm_qkv(x, norm, eps, n, wq, bq, wk, bk, wv, bv, xb, q, k, v);
  }

  // A prefill chunk's y = residual + x . W^T as one cuBLASLt product (the Half prefill), the residual
  // added in its epilogue rather than by a kernel after; x null: swiglu_rounded left it rounded in the
  // workspace. False where cuBLASLt does not take it (the caller's own way then).
  bool cublaslt_add(const float* x, int n, const Weight& w, const float* residual, float* y) {
    if (!half_on_cublaslt() || !gemm_takes(n, w)) return false;
    void* workspace = gemm_workspace(n, w.cols);
    return gemm_cublaslt_add(x, n, upload(w), weight_type(w.dtype), w.rows, w.cols, residual, y, workspace, stream_);
  }

  void matmul_add(const float* x, int n, const Weight& w, float* y, float* scratch) override {
    if (cublaslt_add(x, n, w, y, y)) return;
    if (!decode_linear_takes(n, w)) return Backend::matmul_add(x, n, w, y, scratch);
    decode_linear(linear_args(x, n, DecodeLinearMode::Add, nullptr, 0.f, {{&w, nullptr, y}}), stream_);
  }

  void matmul_add_to(const float* x, int n, const Weight& w, const float* residual, float* y, float* scratch) override {
    if (cublaslt_add(x, n, w, residual, y)) return;
    if (!decode_linear_takes(n, w)) return Backend::matmul_add_to(x, n, w, residual, y, scratch);
    DecodeLinearArgs a = linear_args(x, n, DecodeLinearMode::Add, nullptr, 0.f, {{&w, nullptr, y}});
    a.residual = residual;
    decode_linear(a, stream_);
  }

  void norm_swiglu(const float* x, const Weight& norm, float eps, int n, const Weight& gate, const Weight& up, float* xb,
                   float* up_scratch, float* out) override {
    const bool alike = same_shape_and_type(gate, up) && gate.rows == up.rows;
    if (decode_linear_takes(n, gate) && alike && norm.rows * norm.cols == gate.cols) {
      return decode_linear(linear_args(x, n, DecodeLinearMode::Swiglu, &norm, eps, {{&gate, nullptr, out}, {&up, nullptr, nullptr}}), stream_);
    }
    if (alike && gemm_takes(n, gate) && gemm_takes(n, up)) {
      rmsnorm(x, norm, n, eps, xb);  // a prefill chunk: the products round xb once
      gemm_of(xb, n, {{&gate, nullptr, out}, {&up, nullptr, up_scratch}});
      return swiglu(out, up_scratch, static_cast<size_t>(n) * gate.rows, out);
    }
    Backend::norm_swiglu(x, norm, eps, n, gate, up, xb, up_scratch, out);
  }

  // A prefill chunk's MLP on cuBLASLt (the Half prefill): gate and up in 16 bits, as transformers' bf16
  // products leave them (half the bytes to write and for SwiGLU to read: bench/gpu/NOTES.md, session
  // 21; REPO_LENS_CUDA_MLP16=0: in float32); SwiGLU writes its product rounded, where the down
  // product reads its operand (no float32 copy, no pass of its own to round it), and the residual is
  // added in down's epilogue.
  void mlp(float* x, const Weight& norm, float eps, int n, const Weight& gate, const Weight& up, const Weight& down, float* xb,
           float* up_scratch, float* gate_out) override {
    const bool takes = half_on_cublaslt() && same_shape_and_type(gate, up) && gate.rows == up.rows && down.cols == gate.rows &&
                       down.dtype == gate.dtype && gemm_takes(n, down);
    static const bool products16 = switched_on("REPO_LENS_CUDA_MLP16");
    bool rounded = false;
    if (!takes || !norm_then_products(x, norm, eps, n, xb, {{&gate, nullptr, gate_out}, {&up, nullptr, up_scratch}},
                                      products16 ? &rounded : nullptr)) {
      return Backend::mlp(x, norm, eps, n, gate, up, down, xb, up_scratch, gate_out);
    }
    void* workspace = gemm_workspace(n, down.cols);
    void* x16 = gemm_cublaslt_x16(workspace);
    const size_t count = size_t(n) * gate.rows;
    const WeightType type = weight_type(down.dtype);
    if (rounded) swiglu16_rounded(gate_out, up_scratch, count, x16, type, stream_);
    else swiglu_rounded(gate_out, up_scratch, count, x16, type, stream_);
    if (!cublaslt_add(nullptr, n, down, x, x)) {  // cuBLASLt refused: its rounded operand in float32 (exact), and our product
      widen16(x16, count, gate_out, type, stream_);
      Backend::matmul_add(gate_out, n, down, x, xb);
    }
  }

  void rope_kv_write(KvCache& kv, int seq, int layer, int pos0, int n, float* q, int n_heads, float* k, const float* v,
                     int n_kv_heads, int head_dim, const float* inv_freq) override {
    query_on_host_ = {};
    if (!decode_linear_enabled() || n > kDecodeLinearMaxTokens) {
      return Backend::rope_kv_write(kv, seq, layer, pos0, n, q, n_heads, k, v, n_kv_heads, head_dim, inv_freq);
    }
    bind(kv);
    const int length = kv.length(seq);
    const int* d_table = mirror_blocks_for_write(kv, seq, pos0, n);
    kept_tiles_written(seq, layer, pos0);
    const Weight freq{DType::F32, inv_freq, 1, head_dim / 2};  // the model's, fixed for its life
    static const bool gather = switched_on("REPO_LENS_CUDA_GATHER_WRITES");  // 0: one copy a layer, as before (A/B)
    float* staged = gather ? stage_on_device(kv, seq, layer, pos0, n) : nullptr;
    // Once sparse decode runs (block_attention), a decode token's q also goes to the host as it is rotated.
    float* q_host = nullptr;
    if (query_to_host_ && n == 1) {
      q_host = static_cast<float*>(pinned_scratch(query_host_, size_t(n_heads) * head_dim * sizeof(float)));
      query_on_host_ = {q, layer};
    }
    rope_kv_append(q, n_heads, k, v, layer_view(layer, d_table), summary_ + layer * layer_summary_floats_, pos0, n, length,
                   static_cast<const float*>(upload(freq)), staged, q_host, stream_);
    if (!staged) stage_write(kv, seq, layer, pos0, n, k, v);
  }

  void rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq) override {
    const Weight freq{DType::F32, inv_freq, 1, head_dim / 2};  // the model's, fixed for its life
    cuda::rope(x, n, heads, head_dim, pos0, static_cast<const float*>(upload(freq)), stream_);
  }

  void swiglu(const float* gate, const float* up, size_t count, float* out) override {
    cuda::swiglu(gate, up, count, out, stream_);
  }

  void add(float* x, const float* y, size_t count) override { cuda::add(x, y, count, stream_); }

  // Appends on the device mirror, and writes through to the host cache (the truth for forks, kv_io
  // and the host's sparse selection) without waiting: the keys and values are copied into pinned
  // staging on the stream and written into the host cache by kv_flush, or when their staging is
  // needed again. A decode step thus waits for the GPU once, not once per layer.
  void kv_write(KvCache& kv, int seq, int layer, int pos0, int n, const float* k, const float* v) override {
    bind(kv);
    const KvCacheShape& s = kv.shape();
    const int length = kv.length(seq);
    const int* d_table = mirror_blocks_for_write(kv, seq, pos0, n);
    kept_tiles_written(seq, layer, pos0);
    kv_append(layer_view(layer, d_table), pos0, n, k, v, stream_);
    key_summary_append(summary_ + layer * layer_summary_floats_, d_table, s.n_kv_heads, s.head_dim, s.block_size, pos0, n, length, k,
                       stream_);
    stage_write(kv, seq, layer, pos0, n, k, v);
  }

  // The device table of `seq` for a write of positions pos0 .. pos0+n-1, the mirror in step with the
  // host in every block it touches.
  const int* mirror_blocks_for_write(const KvCache& kv, int seq, int pos0, int n) {
    const KvCacheShape& s = kv.shape();
    const std::vector<int>& table = kv.blocks(seq);
    // Before the append the mirror must hold each touched block as the host does. A block starting
    // inside this write holds nothing the sequence can read yet (fresh, or past a truncation), so
    // it needs no upload; another one is re-uploaded if the host changed it. Until the staged
    // writes reach the host no version changes, so these blocks stay in step (see apply_staged).
    // The same holds for the key summaries: such a block's summary starts at its first position.
    const int length = kv.length(seq);
    for (int lb = pos0 / s.block_size; lb <= (pos0 + n - 1) / s.block_size; lb++) {
      forget_sketches(table[lb]);
      if (lb * s.block_size >= std::max(pos0, length)) seen_[table[lb]] = kv.block_version(table[lb]);
      else refresh(kv, table[lb]);
      if (pos0 + n >= (lb + 1) * s.block_size) may_keep_sketches(table[lb]);  // full once written
    }
    return upload_table(table);
  }

  // The staging with room for `floats` more (and a device copy when asked): when the current one
  // is full, it goes to writer_ and the other takes the next writes once its own are on the host.
  KvStaging& staging_for(KvCache& kv, size_t floats, bool with_device) {
    KvStaging* staging = &staging_[current_staging_];
    if (staging->used + floats > staging->capacity() || (with_device && !staging->has_device_copy())) {
      if (staging->used > 0) {
        seal(*staging);
        hand_off(kv, *staging);  // waits for the other staging's writes first
        current_staging_ ^= 1;
        staging = &staging_[current_staging_];
      }
      staging->reserve(std::max(kStagingFloats, 4 * floats), with_device);  // empty here
    }
    return *staging;
  }

  // Copies the written k, v [n][n_kv_heads][head_dim] into pinned staging for kv_flush (one copy
  // when v lies at a fixed distance after k, as the forward pass allocates them). With a copy
  // stream they are gathered into the staging's device copy instead, a device-to-device copy of a few
  // microseconds, and go to the host behind the stream's kernels (copy_pending); a prefill chunk's
  // copy to the host on the stream took ~80 us a layer on the H100, the kernels waiting.
  void stage_write(KvCache& kv, int seq, int layer, int pos0, int n, const float* k, const float* v) {
    const KvCacheShape& s = kv.shape();
    const size_t stride = size_t(s.n_kv_heads) * s.head_dim, floats = 2 * size_t(n) * stride;
    const bool gather = copy_stream_ != nullptr;
    float* to;
    if (gather) {
      to = stage_on_device(kv, seq, layer, pos0, n);
    } else {
      KvStaging& staging = staging_for(kv, floats, false);
      copy_pending(staging);  // the gathered range stays one piece
      staging.sealed = false;
      to = staging.host() + staging.used;
      staging.writes.push_back({seq, layer, pos0, n, staging.used});
      staging.used += floats;
    }
    const cudaMemcpyKind kind = gather ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost;
    const size_t bytes = n * stride * sizeof(float);
    if (decode_linear_enabled() && v >= k + n * stride && v - k <= (ptrdiff_t(1) << 24)) {  // one 2D copy: k, then v at its pitch
      RL_CUDA_CHECK(cudaMemcpy2DAsync(to, bytes, k, size_t(v - k) * sizeof(float), bytes, 2, kind, stream_));
    } else {
      RL_CUDA_CHECK(cudaMemcpyAsync(to, k, bytes, kind, stream_));
      RL_CUDA_CHECK(cudaMemcpyAsync(to + n * stride, v, bytes, kind, stream_));
    }
  }

  // Where a kernel is to gather the k, v [n][n_kv_heads][head_dim] of a write (keys, then values),
  // at the offset its host staging will hold them; copied over by copy_pending.
  float* stage_on_device(KvCache& kv, int seq, int layer, int pos0, int n) {
    const KvCacheShape& s = kv.shape();
    const size_t floats = 2 * size_t(n) * s.n_kv_heads * s.head_dim;
    KvStaging& staging = staging_for(kv, floats, true);
    if (staging.pending_from == KvStaging::kNonePending) staging.pending_from = staging.used;
    staging.sealed = false;
    float* at = staging.on_device() + staging.used;
    staging.writes.push_back({seq, layer, pos0, n, staging.used});
    staging.used += floats;
    return at;
  }

  // One copy of the writes gathered on the device since the last one, on the copy stream once the
  // stream has gathered them. The device copy is written again only after the host waited for the
  // staging's `copied` (hand_off, apply_staged), so the copy stream need not hold the stream back.
  void copy_pending(KvStaging& staging) {
    if (staging.pending_from == KvStaging::kNonePending) return;
    const size_t from = staging.pending_from;
    staging.pending_from = KvStaging::kNonePending;
    if (copy_stream_) {
      RL_CUDA_CHECK(cudaEventRecord(gathered_, stream_));
      RL_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, gathered_, 0));
    }
    RL_CUDA_CHECK(cudaMemcpyAsync(staging.host() + from, staging.on_device() + from, (staging.used - from) * sizeof(float),
                                  cudaMemcpyDeviceToHost, copy_stream_ ? copy_stream_ : stream_));
  }

  // Records the staging's event after every copy into it.
  void seal(KvStaging& staging) {
    if (staging.sealed) return;
    copy_pending(staging);
    RL_CUDA_CHECK(cudaEventRecord(staging.copied, copy_stream_ ? copy_stream_ : stream_));
    staging.sealed = true;
  }

  // The step's gathered writes copied to the host behind the last layer: kv_flush applies them while
  // the lm_head's product runs.
  void kv_written(KvCache&) override { seal_current(); }

  void seal_current() {
    KvStaging& staging = staging_[current_staging_];
    if (!staging.writes.empty()) seal(staging);
  }

  // The older staging is with writer_ (staging_for). The newer one is written here when it holds a
  // decode step's few writes, which need no thread; a prefill's (megabytes) go to writer_ too, whose
  // threads share them.
  static constexpr size_t kFlushOnThreadsFloats = size_t(1) << 18;  // 1 MB
  void kv_flush(KvCache& kv) override {
    KvStaging& newer = staging_[current_staging_];
    try {
      seal_current();
      if (newer.used >= kFlushOnThreadsFloats) hand_off(kv, newer);
      {
        const Waiting waiting(PolicyTiming::Flush);
        writer_.wait();
      }
      apply_staged(kv, newer);
    } catch (...) {  // a failed flush leaves nothing pending (the forward pass drops the positions)
      try {
        writer_.wait();
      } catch (...) {
        // the first error is the one to report
      }
      for (KvStaging& staging : staging_) staging.clear();
      throw;
    }
  }

  // From kPrefillMinTokens tokens attention() takes the tiled kernel; REPO_LENS_CUDA_PREFILL_ATTENTION=0
  // keeps the one-CTA-per-(token, head) kernel for every n (A/B timing and diagnosis).
  static constexpr int kPrefillMinTokens = 16;
  void attention(const KvCache& kv, int seq, int layer, int pos0, int n, int n_heads, const float* q, float* out) override {
    bind(kv);
    const KvCacheShape& s = kv.shape();
    const std::vector<int>& table = kv.blocks(seq);
    const int used = (pos0 + n + s.block_size - 1) / s.block_size;
    refresh_table(kv, table, used);
    // transformers: scores * head_dim ** -0.5, the Python float applied in float32 (as cpu/attention.cc).
    const float scale = static_cast<float>(std::pow(static_cast<double>(s.head_dim), -0.5));
    const PagedKvF32 view = layer_view(layer, upload_table(table));
    // Prefill chunks: K/V tiles read once per tile of queries, on the tensor cores; decode steps
    // (and head dims the tiled kernel lacks) one CTA per (token, head).
    static const bool tiled_enabled = switched_on("REPO_LENS_CUDA_PREFILL_ATTENTION");
    const bool tiled = tiled_enabled && n >= kPrefillMinTokens && prefill_attention_supports(s.head_dim, n_heads, s.n_kv_heads);
    PrefillKvTiles tiles;
    const PrefillKvTiles* kept = tiled ? kept_tiles(s, seq, layer, pos0, pos0 + n, tiles) : nullptr;
    const size_t workspace = tiled ? prefill_attention_workspace_floats(view, pos0, n, n_heads, prefill_, kept != nullptr)
                                   : dense_attention_workspace_floats(n, n_heads, s.head_dim, pos0);
    float* w = nullptr;
    if (workspace) {
      // The tiled kernel's workspace grows with the context, and each reallocation idled the GPU for
      // ~20 ms at 128K on the H100 machine (a sync, cudaFree, cudaMalloc): where memory allows, the
      // first growth takes what a chunk at the end of the cache would need.
      const size_t most =
          tiled ? prefill_attention_workspace_floats(view, s.n_blocks * s.block_size - n, n, n_heads, prefill_, kept != nullptr) : 0;
      const size_t have = attention_workspace_ ? capacity_[&attention_workspace_] : 0;
      if (workspace * sizeof(float) > have && most > workspace) {
        try {
          scratch(attention_workspace_, most * sizeof(float));
        } catch (const std::exception&) {  // no room for that much: grow as needed
          (void)cudaGetLastError();  // the failed cudaMalloc's error is not the next launch's
        }
      }
      w = static_cast<float*>(growing_scratch(attention_workspace_, workspace * sizeof(float)));
    }
    if (tiled) prefill_attention(view, pos0, n, n_heads, scale, q, out, w, prefill_, stream_, kept);
    else dense_attention(view, pos0, n, n_heads, scale, q, out, w, stream_);
  }

  // The tiled attention's fp16 keys and values of `layer` kept for `seq` (kept_), its positions [0, end)
  // converted by this call; null where there is no room for them (or REPO_LENS_CUDA_KEEP_TILES=0).
  const PrefillKvTiles* kept_tiles(const KvCacheShape& s, int seq, int layer, int pos0, int end, PrefillKvTiles& tiles) {
    static const bool enabled = switched_on("REPO_LENS_CUDA_KEEP_TILES");
    if (!enabled || kept_.failed) return nullptr;
    if (!kept_.buffer) {
      kept_.stride = prefill_kv_tiles_stride(s.n_blocks * s.block_size);
      kept_.layer_halves = prefill_kv_tiles_halves(s.n_kv_heads, s.head_dim, kept_.stride, prefill_);
      const size_t bytes = size_t(s.n_layers) * kept_.layer_halves * sizeof(__half);
      size_t free_bytes = 0, total_bytes = 0;
      RL_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
      try {
        // room for the decode's buffers after them: a sixth of the device, at least 2 GB
        if (bytes + std::max(kKeptTilesHeadroom, total_bytes / 6) > free_bytes) throw std::runtime_error("no room");
        kept_.buffer = std::make_unique<DeviceBuffer>(bytes);
      } catch (const std::exception&) {  // each call converts the whole context, as without them
        (void)cudaGetLastError();
        kept_.failed = true;
        return nullptr;
      }
      kept_.valid.assign(s.n_layers, 0);
    }
    if (kept_.seq != seq) {
      std::fill(kept_.valid.begin(), kept_.valid.end(), 0);
      kept_.seq = seq;
    }
    tiles.kv16 = static_cast<__half*>(kept_.buffer->ptr) + size_t(layer) * kept_.layer_halves;
    tiles.stride = kept_.stride;
    tiles.from = std::min(kept_.valid[layer], pos0);  // this call's positions were just written
    kept_.valid[layer] = end;
    return &tiles;
  }

  // Positions from pos0 on of `layer` written on the mirror: kept tiles of them are stale.
  void kept_tiles_written(int seq, int layer, int pos0) {
    if (seq == kept_.seq) kept_.valid[layer] = std::min(kept_.valid[layer], pos0);
  }

  // Sparse decode: the host selects from its cache; the chosen blocks are attended on the device
  // mirror, one KV head at a time (chosen_attention.cuh).
  std::unique_ptr<prhs::BlockAttention> block_attention(const KvCache& kv, int seq, int layer, int context, int n_heads,
                                                        const float* q, float* out) override {
    PolicyTiming& timing = policy_timing();
    const double setup_start = timing.on ? seconds_now() : 0;
    const double between = timing.on && layer > 0 && timing.last_end > 0 ? setup_start - timing.last_end : -1;
    if (timing.on) {  // the waits of this layer's selection from here on
      for (long& n : timing.layer_waits) n = 0;
      timing.layer_wait_s = 0;
    }
    bind(kv);
    const KvCacheShape& s = kv.shape();
    if (!chosen_attention_supports(s.head_dim)) throw std::runtime_error("cuda backend: sparse decode attention needs head_dim <= 512");
    const std::vector<int>& table = kv.blocks(seq);
    const int used = (context + s.block_size - 1) / s.block_size;
    refresh_table(kv, table, used);
    HeadAttentionLayer l;
    l.stream = stream_;
    l.kv = layer_view(layer, upload_table(table));
    l.context = context;
    l.scale = static_cast<float>(std::pow(static_cast<double>(s.head_dim), -0.5));
    l.q = q;
    l.out = out;
    l.group = n_heads / s.n_kv_heads;
    // Per KV head, sized for the cache's every block (a sequence never has more): allocated once.
    const size_t most = std::max(size_t(used), size_t(s.n_blocks)), heads = size_t(s.n_kv_heads);
    const size_t rows = heads * l.group * chosen_attention_state_floats(s.head_dim);
    l.n_logical = int(most);
    // The block ids staged on the host in two sets used by alternate layers: a layer's heads may be made
    // before the host waits for its q (DecodeAttention::prepare), when the previous layer's copies may
    // still be queued. On the device each layer has its own, kept from step to step with a record of
    // what they hold (HeadAttentionLayer::blocks_held).
    const size_t parity = size_t(layer % 2), layers = size_t(s.n_layers);
    int* blocks = static_cast<int*>(scratch(chosen_blocks_, layers * heads * most * sizeof(int)));
    if (blocks != chosen_blocks_held_at_ || most != chosen_blocks_held_most_) chosen_blocks_held_.assign(layers, {});  // nothing known
    chosen_blocks_held_at_ = blocks;
    chosen_blocks_held_most_ = most;
    l.blocks = blocks + size_t(layer) * heads * most;
    l.blocks_held = &chosen_blocks_held_[layer];
    l.blocks_host = static_cast<int*>(pinned_scratch(chosen_blocks_host_, 2 * heads * most * sizeof(int))) + parity * heads * most;
    l.sent = events(attention_sent_, 2 * s.n_kv_heads) + parity * heads;
    l.state = static_cast<float*>(scratch(chosen_state_, rows * sizeof(float)));
    l.state_host = static_cast<float*>(pinned_scratch(chosen_state_host_, rows * sizeof(float)));
    l.copied = events(attention_copied_, s.n_kv_heads);
    l.side = side_;
    l.consumed = events(attention_consumed_, 2)[parity];
    // The selection's bounds (min/max and int8/int4 sketches) from the same mirror.
    BlockBoundsLayer b;
    b.stream = stream_;
    b.kv.keys = keys_ + layer * layer_floats_;
    b.kv.summary = summary_ + layer * layer_summary_floats_;
    b.kv.block_table = l.kv.block_table;
    b.kv.n_kv_heads = s.n_kv_heads;
    b.kv.head_dim = s.head_dim;
    b.kv.block_size = s.block_size;
    b.kv.context = context;
    b.log_fill = log_fill_;
    b.group = l.group;
    b.n_blocks = used;
    b.most = most;
    b.q = static_cast<double*>(scratch(bounds_q_, heads * l.group * s.head_dim * sizeof(double)));
    b.tables = static_cast<double*>(scratch(bounds_tables_, heads * 2 * l.group * most * sizeof(double)));
    b.mask = static_cast<char*>(scratch(bounds_mask_, heads * most));
    b.result = static_cast<double*>(scratch(bounds_result_, heads * (most + l.group) * sizeof(double)));
    b.result_host = static_cast<double*>(pinned_scratch(bounds_result_host_, heads * (most + l.group) * sizeof(double)));
    b.copied = events(bounds_copied_, s.n_kv_heads);
    b.ids = static_cast<int*>(scratch(bounds_ids_, heads * most * sizeof(int)));
    b.ids_host = static_cast<int*>(pinned_scratch(bounds_ids_host_, heads * most * sizeof(int)));
    b.masses = static_cast<double*>(scratch(bounds_masses_, heads * most * l.group * sizeof(double)));
    b.masses_host = static_cast<double*>(pinned_scratch(bounds_masses_host_, heads * most * l.group * sizeof(double)));
    // REPO_LENS_CUDA_SKETCH_AHEAD=0: a certificate's sketches bounded only when it asks (A/B timing).
    static const bool sketch_ahead = switched_on("REPO_LENS_CUDA_SKETCH_AHEAD");
    if (sketch_ahead) {
      if (!bounds_all_ || capacity_[&bounds_all_] < most) {  // scratch() keeps no contents: set once per size
        scratch(bounds_all_, most);
        RL_CUDA_CHECK(cudaMemsetAsync(bounds_all_->ptr, 1, most, stream_));
      }
      b.sketch_bits = &sketch_bits_ahead_;
      b.all = static_cast<const char*>(bounds_all_->ptr);
      if (sketch_stream_) {
        b.sketch_stream = sketch_stream_;
        b.sketched = events(bounds_sketched_, s.n_kv_heads);
      }
    }
    static const bool bounds_enabled = switched_on("REPO_LENS_CUDA_BOUNDS");  // 0: the host bounds
    const bool with_bounds = bounds_enabled && block_bounds_sketch_supports(l.group, s.head_dim, s.block_size);
    if (with_bounds) b.sketch = sketch_cache(kv, layer);
    // The host's copy of q, started now: Model::attend waits for it after deciding whether the step's
    // write-through must reach the host first. REPO_LENS_CUDA_EARLY_QUERY=0: Model::attend copies q
    // after the write-through as before; REPO_LENS_CUDA_SKIP_FLUSH=0: the write-through always comes
    // first; REPO_LENS_CUDA_SCALE_QUERY=0: the bounds upload the host's scaled q (A/B timing).
    static const bool early_query = switched_on("REPO_LENS_CUDA_EARLY_QUERY"), skip_flush = switched_on("REPO_LENS_CUDA_SKIP_FLUSH");
    static const bool scale_query = switched_on("REPO_LENS_CUDA_SCALE_QUERY");
    static const bool attend_early = switched_on("REPO_LENS_CUDA_ATTEND_EARLY");  // 0: no attention before the host has q
    BlockAttentionQuery query;
    // REPO_LENS_CUDA_MAPPED_QUERY=0: q always copied after its kernel, as before (A/B timing).
    static const bool mapped_query = switched_on("REPO_LENS_CUDA_MAPPED_QUERY");
    query_to_host_ = early_query && mapped_query;
    if (early_query && query_on_host_.q == q && query_on_host_.layer == layer) {  // rope_kv_write wrote it there
      query.copied = events(query_copied_, 2)[0];
      RL_CUDA_CHECK(cudaEventRecord(query.copied, stream_));
      query.host = static_cast<const float*>(query_host_.ptr);
      query.mapped = true;
    } else if (early_query) {
      const size_t floats = size_t(n_heads) * s.head_dim;
      float* host = static_cast<float*>(pinned_scratch(query_host_, floats * sizeof(float)));
      cudaEvent_t* q_events = events(query_copied_, 2);  // copied, written
      if (side_) {  // the copy off the stream: its kernels go on while q travels
        RL_CUDA_CHECK(cudaEventRecord(q_events[1], stream_));
        RL_CUDA_CHECK(cudaStreamWaitEvent(side_, q_events[1], 0));
      }
      RL_CUDA_CHECK(cudaMemcpyAsync(host, q, floats * sizeof(float), cudaMemcpyDeviceToHost, side_ ? side_ : stream_));
      query.copied = q_events[0];
      RL_CUDA_CHECK(cudaEventRecord(query.copied, side_ ? side_ : stream_));
      query.host = host;
    }
    query.scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));  // decode_attention.cc's scale
    query.scale_on_device = scale_query;
    query.host_reads = !skip_flush;
    query.attend_early = attend_early;
    if (timing.on && layer == 0) timing.steps++;
    static const bool fold_together = switched_on("REPO_LENS_CUDA_FOLD_TOGETHER"), write_together = switched_on("REPO_LENS_CUDA_WRITE_TOGETHER");
    return make_block_attention(l, b, with_bounds, query, fold_together, write_together, setup_start, between);
  }

 private:
  void* device(size_t bytes) {
    buffers_.push_back(std::make_unique<DeviceBuffer>(bytes));
    return buffers_.back()->ptr;
  }

  // A reusable device buffer of at least `bytes` (its old contents are not kept).
  void* scratch(std::unique_ptr<DeviceBuffer>& buffer, size_t bytes) {
    if (!buffer || capacity_[&buffer] < bytes) {
      RL_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may still be read
      if (side_) RL_CUDA_CHECK(cudaStreamSynchronize(side_));
      buffer = std::make_unique<DeviceBuffer>(bytes);
      capacity_[&buffer] = bytes;
    }
    return buffer->ptr;
  }

  // `count` events (made once, destroyed with the backend).
  cudaEvent_t* events(std::vector<cudaEvent_t>& made, int count) {
    while (int(made.size()) < count) {
      cudaEvent_t e;
      RL_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      made.push_back(e);
    }
    return made.data();
  }

  // scratch() for a buffer whose size creeps up from call to call (the attention's workspace grows
  // with the context, chunk by chunk): a growth takes half as much again, so that a prefill
  // reallocates it, with the device sync that takes, a few times rather than at every chunk.
  void* growing_scratch(std::unique_ptr<DeviceBuffer>& buffer, size_t bytes) {
    const size_t have = buffer ? capacity_[&buffer] : 0;
    return scratch(buffer, bytes > have ? std::max(bytes, have + have / 2) : bytes);
  }

  // A reusable pinned host buffer of at least `bytes` (its old contents are not kept).
  void* pinned_scratch(PinnedBuffer& buffer, size_t bytes) {
    if (buffer.bytes < bytes) {
      RL_CUDA_CHECK(cudaStreamSynchronize(stream_));  // a copy into the old buffer may be pending
      if (side_) RL_CUDA_CHECK(cudaStreamSynchronize(side_));
      buffer.reset(bytes);
    }
    return buffer.ptr;
  }

  // The device copy of a weight in its stored dtype, uploaded on first use.
  const void* upload(const Weight& w) {
    auto it = weights_.find(w.data);
    if (it != weights_.end()) return it->second;
    const size_t bytes = size_t(w.rows) * w.cols * dtype_bytes(w.dtype);
    void* d = device(bytes);
    upload_bytes(d, w.data, bytes);
    weights_.emplace(w.data, d);
    return d;
  }

  // A bias as float32 on the device (matvec adds float32 biases).
  const float* upload_f32(const Weight& w) {
    auto it = biases_.find(w.data);
    if (it != biases_.end()) return it->second;
    const size_t count = size_t(w.rows) * w.cols;
    std::vector<float> host(count);
    for (size_t i = 0; i < count; i++) host[i] = element(w, i);
    float* d = static_cast<float*>(device(count * sizeof(float)));
    upload_bytes(d, host.data(), count * sizeof(float));
    biases_.emplace(w.data, d);
    return d;
  }

  // On the backend's stream: cudaMemcpy runs on the legacy default stream, which a non-blocking
  // stream does not wait for, and returns before its last pageable chunk reaches the device.
  void upload_bytes(void* dst, const void* src, size_t bytes) {
    RL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    RL_CUDA_CHECK(cudaStreamSynchronize(stream_));  // src may be freed once this returns
  }

  static float element(const Weight& w, size_t i) {
    if (w.dtype == DType::F32) return static_cast<const float*>(w.data)[i];
    const uint16_t h = static_cast<const uint16_t*>(w.data)[i];
    if (w.dtype == DType::BF16) {
      const uint32_t bits = uint32_t(h) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    __half_raw raw;
    raw.x = h;
    return __half2float(__half(raw));
  }

  // The device mirror of `kv`'s block storage, made on first use (one cache per model).
  void bind(const KvCache& kv) {
    if (bound_ == &kv) return;
    if (bound_) throw std::runtime_error("cuda backend: a second KV cache; one backend serves one model");
    const KvCacheShape& s = kv.shape();
    block_floats_ = size_t(s.n_kv_heads) * s.block_size * s.head_dim;
    layer_floats_ = size_t(s.n_blocks) * block_floats_;
    keys_ = static_cast<float*>(device(s.n_layers * layer_floats_ * sizeof(float)));
    values_ = static_cast<float*>(device(s.n_layers * layer_floats_ * sizeof(float)));
    block_summary_floats_ = size_t(s.n_kv_heads) * 2 * s.head_dim;
    layer_summary_floats_ = size_t(s.n_blocks) * block_summary_floats_;
    summary_ = static_cast<float*>(device(s.n_layers * layer_summary_floats_ * sizeof(float)));
    std::vector<double> log_fill(s.block_size + 1);
    for (int f = 0; f <= s.block_size; f++) log_fill[f] = std::log(static_cast<double>(f));
    log_fill_ = static_cast<double*>(device(log_fill.size() * sizeof(double)));
    upload_bytes(log_fill_, log_fill.data(), log_fill.size() * sizeof(double));
    seen_.assign(s.n_blocks, ~uint64_t(0));  // nothing mirrored yet
    bound_ = &kv;
  }

  // Re-uploads a physical block (every layer) when the host changed it behind the mirror's back.
  void refresh(const KvCache& kv, int block) {
    const uint64_t version = kv.block_version(block);
    if (seen_[block] == version) return;
    writer_.wait();  // its contents are read below
    forget_sketches(block);
    kept_.seq = -1;  // a block changed behind the mirror: every kept tile may be stale
    for (int layer = 0; layer < kv.shape().n_layers; layer++) {
      const size_t at = layer * layer_floats_ + block * block_floats_;
      RL_CUDA_CHECK(cudaMemcpyAsync(keys_ + at, kv.keys(layer, block, 0), block_floats_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
      RL_CUDA_CHECK(cudaMemcpyAsync(values_ + at, kv.values(layer, block, 0), block_floats_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
    }
    // The key summary of every layer: one row per layer, layer_summary_floats_ apart on both sides.
    const size_t pitch = layer_summary_floats_ * sizeof(float);
    RL_CUDA_CHECK(cudaMemcpy2DAsync(summary_ + block * block_summary_floats_, pitch, kv.key_min(0, block, 0), pitch,
                                    block_summary_floats_ * sizeof(float), kv.shape().n_layers, cudaMemcpyHostToDevice, stream_));
    seen_[block] = version;
    may_keep_sketches(block);  // it may be full
  }

  // refresh() for the blocks [0, used) of a sequence's table, skipped when no block of the cache
  // changed since all of them were last found in step (KvCache::changes; the same block ids).
  void refresh_table(const KvCache& kv, const std::vector<int>& table, int used) {
    if (kv.changes() == checked_changes_ && used <= int(checked_.size()) && std::equal(table.begin(), table.begin() + used, checked_.begin())) {
      return;
    }
    for (int lb = 0; lb < used; lb++) refresh(kv, table[lb]);
    checked_.assign(table.begin(), table.begin() + used);
    checked_changes_ = kv.changes();
  }

  // A staging's writes counted in the host cache at once (KvCache::note_writes), the staging emptied
  // even when that throws; returns what KvCache::store is to copy from its pinned memory once the
  // stream has copied it there (its event was recorded after the last copy). A block the mirror held
  // exactly before a write stays exact after it.
  std::vector<KvWriter::Write> note_staged(KvCache& kv, KvStaging& staging) {
    std::vector<KvStaging::Write> writes;
    writes.swap(staging.writes);
    staging.clear();  // its contents stay in the pinned memory until the next write
    const KvCacheShape& s = kv.shape();
    const size_t stride = size_t(s.n_kv_heads) * s.head_dim;
    // The blocks refresh_table last found in step stay so if these writes only changed blocks in step.
    const uint64_t changes_before = kv.changes();
    uint64_t written = 0;
    bool all_in_sync = true;
    std::vector<int> in_sync;
    std::vector<KvWriter::Write> stores;
    for (const KvStaging::Write& w : writes) {
      const std::vector<int>& table = kv.blocks(w.seq);
      in_sync.clear();
      for (int lb = w.pos0 / s.block_size; lb <= (w.pos0 + w.n - 1) / s.block_size; lb++) {
        if (seen_[table[lb]] == kv.block_version(table[lb])) in_sync.push_back(table[lb]);
        else all_in_sync = false;
      }
      kv.note_writes(w.seq, w.layer, w.pos0, w.n);
      const float* keys = staging.host() + w.at;  // [n][kv_heads][head_dim], then the values
      stores.push_back({w.seq, w.layer, w.pos0, w.n, keys, keys + size_t(w.n) * stride, stride});
      written += w.n;
      for (int block : in_sync) seen_[block] = kv.block_version(block);
    }
    if (changes_before == checked_changes_ && all_in_sync && kv.changes() == changes_before + written) checked_changes_ = kv.changes();
    return stores;
  }

  // Writes a staging into the host cache now.
  void apply_staged(KvCache& kv, KvStaging& staging) {
    if (staging.writes.empty()) return;
    const std::vector<KvWriter::Write> stores = note_staged(kv, staging);
    {
      const Waiting waiting(PolicyTiming::Flush);
      RL_CUDA_CHECK(cudaEventSynchronize(staging.copied));
    }
    for (const KvWriter::Write& w : stores) kv.store(w.seq, w.layer, w.pos0, w.n, w.keys, w.values);
  }

  // The same on writer_, while this thread goes on launching.
  void hand_off(KvCache& kv, KvStaging& staging) {
    if (!staging.writes.empty()) writer_.start(kv, staging.copied, note_staged(kv, staging));
  }

  // The sketch cache's pointers for `layer` (block_bounds.cuh's SketchCache), made on first use.
  // sketch_kernel keeps the sketch of a block only while the block is full, so a physical block is
  // marked as possibly kept (sketched_) when the mirror makes it full: at a write that reaches its
  // end, at a re-upload, and every block when the cache is made; a write to a marked block clears its
  // entries first (forget_sketches). REPO_LENS_CUDA_SKETCH_CACHE=0, or too little device memory for
  // it: no cache, every sketch built from the keys as before.
  SketchCache sketch_cache(const KvCache& kv, int layer) {
    static const bool enabled = switched_on("REPO_LENS_CUDA_SKETCH_CACHE");
    const KvCacheShape& s = kv.shape();
    if (!enabled || sketch_cache_failed_) return {};
    const size_t entries = size_t(s.n_layers) * s.n_blocks * s.n_kv_heads;
    if (!sketch_valid_) {
      try {
        sketch_codes_ = std::make_unique<DeviceBuffer>(entries * s.head_dim * s.block_size);
        sketch_err_ = std::make_unique<DeviceBuffer>(entries * s.head_dim * sizeof(float));
        sketch_valid_ = std::make_unique<DeviceBuffer>(entries);
      } catch (const std::exception&) {  // the cache only saves time: go on without it
        cudaGetLastError();
        sketch_codes_.reset(), sketch_err_.reset(), sketch_valid_.reset();
        sketch_cache_failed_ = true;
        return {};
      }
      RL_CUDA_CHECK(cudaMemsetAsync(sketch_valid_->ptr, 0, entries, stream_));
      sketched_.assign(s.n_blocks, 1);  // blocks filled before the cache existed
    }
    const size_t first = size_t(layer) * s.n_blocks * s.n_kv_heads;
    SketchCache c;
    c.codes = static_cast<unsigned char*>(sketch_codes_->ptr) + first * s.head_dim * s.block_size;
    c.err = static_cast<float*>(sketch_err_->ptr) + first * s.head_dim;
    c.valid = static_cast<unsigned char*>(sketch_valid_->ptr) + first;
    return c;
  }

  // A physical block about to change on the device: its kept sketches (every layer, every KV head)
  // are dropped first, on the stream, so no later bound reads them.
  void forget_sketches(int block) {
    if (sketched_.empty() || !sketched_[block]) return;
    const KvCacheShape& s = bound_->shape();
    const size_t heads = size_t(s.n_kv_heads);
    RL_CUDA_CHECK(cudaMemset2DAsync(static_cast<unsigned char*>(sketch_valid_->ptr) + size_t(block) * heads, size_t(s.n_blocks) * heads, 0,
                                    heads, s.n_layers, stream_));
    sketched_[block] = 0;
  }
  void may_keep_sketches(int block) {
    if (!sketched_.empty()) sketched_[block] = 1;
  }

  // The device copy of a block table; uploaded only when it differs from the last one (a decode
  // step's layers all use the same table).
  const int* upload_table(const std::vector<int>& table) {
    int* d = static_cast<int*>(scratch(table_, table.size() * sizeof(int)));
    if (d == uploaded_table_at_ && table == uploaded_table_) return d;
    RL_CUDA_CHECK(cudaMemcpyAsync(d, table.data(), table.size() * sizeof(int), cudaMemcpyHostToDevice, stream_));
    uploaded_table_ = table;
    uploaded_table_at_ = d;
    return d;
  }

  PagedKvF32 layer_view(int layer, const int* table) const {
    const KvCacheShape& s = bound_->shape();
    PagedKvF32 view;
    view.k = keys_ + layer * layer_floats_;
    view.v = values_ + layer * layer_floats_;
    view.block_table = table;
    view.n_kv_heads = s.n_kv_heads;
    view.head_dim = s.head_dim;
    view.block_size = s.block_size;
    return view;
  }

  cudaStream_t stream_ = nullptr;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
  std::unordered_map<const void*, const void*> weights_;
  std::unordered_map<const void*, const float*> biases_;
  std::unordered_map<const void*, size_t> capacity_;
  std::unique_ptr<DeviceBuffer> tokens_, table_, attention_workspace_, chosen_blocks_, chosen_state_;
  std::vector<std::vector<int>> chosen_blocks_held_;  // [layer]: what chosen_blocks_ holds (HeadAttentionLayer::blocks_held)
  const int* chosen_blocks_held_at_ = nullptr;        // the buffer those records describe, and its
  size_t chosen_blocks_held_most_ = 0;                // ids per KV head
  std::unique_ptr<DeviceBuffer> bounds_q_, bounds_tables_, bounds_mask_, bounds_result_, bounds_ids_, bounds_masses_, bounds_all_;
  int sketch_bits_ahead_ = 0;  // CudaBlockBounds::Layer::sketch_bits
  PinnedBuffer bounds_result_host_, chosen_state_host_, chosen_blocks_host_, copy_bounce_, query_host_, bounds_ids_host_, bounds_masses_host_;
  std::vector<int> uploaded_table_;  // what table_ holds, while uploaded_table_at_ is its address
  const int* uploaded_table_at_ = nullptr;
  std::vector<cudaEvent_t> bounds_copied_, bounds_sketched_, attention_copied_, attention_sent_;  // per KV head
  std::vector<cudaEvent_t> query_copied_;  // after block_attention's copy of q; after q was written (side_)
  // Where sparse decode runs, rope_kv_write writes a decode token's q into query_host_ as well
  // (query_to_host_, set by block_attention), and which q of which layer it wrote there last.
  bool query_to_host_ = false;
  struct {
    const float* q = nullptr;
    int layer = -1;
  } query_on_host_;
  std::vector<cudaEvent_t> attention_consumed_;  // per parity of the layer: CudaHeadAttention::Layer::consumed
  cudaStream_t side_ = nullptr;  // the sparse decode's small copies (REPO_LENS_CUDA_SIDE_COPIES)
  cudaStream_t sketch_stream_ = nullptr;  // the sketches ahead (REPO_LENS_CUDA_SKETCH_APART)
  cudaStream_t copy_stream_ = nullptr;    // the write-through's copies to the host (REPO_LENS_CUDA_COPY_STREAM)
  cudaEvent_t gathered_ = nullptr;        // recorded on the stream before each of them
  LogitsPieces logits_pieces_;            // matmul_for_host's, until copy_to_host takes them
  const PrefillPrecision prefill_;  // the GEMM's and the tiled attention's (prefill chunks of 16 tokens or more)
  // Per layer, the tiled prefill attention's fp16 keys and values of one sequence, kept from call to
  // call (prefill_attention.cuh's PrefillKvTiles), so that a chunk converts its own keys rather than
  // the whole context's again: 6 % of a 128K Half prefill on the H100 (bench/gpu/NOTES.md, session 19).
  // Made at the first tiled call where the device has room for every layer's (3.8 GB for the 1.5B
  // shape's 128K cache in Half, twice that in Float32) and a sixth of the device more.
  static constexpr size_t kKeptTilesHeadroom = size_t(2) << 30;
  struct {
    std::unique_ptr<DeviceBuffer> buffer;  // [n_layers][layer_halves]
    size_t layer_halves = 0;
    int stride = 0;          // positions per KV head: the cache's every position
    int seq = -1;            // whose they are (-1: nobody's)
    std::vector<int> valid;  // per layer: positions [0, valid) as the mirror holds them
    bool failed = false;     // no room: never tried again
  } kept_;
  GemmLibrary gemm_library_ = GemmLibrary::Own;
  std::unique_ptr<DeviceBuffer> gemm_workspace_;  // gemm_workspace_bytes for the largest product so far
  // The deferred write-through: two pinned stagings in turn, so the host writes one into the
  // cache while the stream copies into the other.
  static constexpr size_t kStagingFloats = size_t(4) << 20;  // 16 MB each at least
  KvStaging staging_[2];
  KvWriter writer_;  // after staging_: stopped before their memory goes
  int current_staging_ = 0;

  const KvCache* bound_ = nullptr;
  float* keys_ = nullptr;    // [n_layers][n_blocks][n_kv_heads][block_size][head_dim]
  float* values_ = nullptr;  // same
  float* summary_ = nullptr;  // [n_layers][n_blocks][n_kv_heads][2][head_dim]: the host's key summaries
  double* log_fill_ = nullptr;  // [block_size + 1]
  size_t block_floats_ = 0, layer_floats_ = 0, block_summary_floats_ = 0, layer_summary_floats_ = 0;
  std::vector<uint64_t> seen_;  // per physical block: the KvCache::block_version the mirror holds
  // The sketch cache: [n_layers][n_blocks][n_kv_heads] entries (block_bounds.cuh's SketchCache).
  std::unique_ptr<DeviceBuffer> sketch_codes_, sketch_err_, sketch_valid_;
  bool sketch_cache_failed_ = false;
  std::vector<char> sketched_;  // per physical block: may have kept sketches (forget_sketches clears them)
  std::vector<int> checked_;     // blocks refresh_table found in step at KvCache::changes() == checked_changes_
  uint64_t checked_changes_ = ~uint64_t(0);
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(PrefillPrecision prefill) { return std::make_unique<CudaBackend>(prefill); }

}  // namespace rl::cuda
