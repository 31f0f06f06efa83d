#include "backend_cuda.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "add.cuh"
#include "cuda_check.cuh"
#include "dense_attention.cuh"
#include "embed.cuh"
#include "kv/kv_cache.h"
#include "kv_append.cuh"
#include "matvec.cuh"
#include "matvec_any.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
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

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    RL_CUDA_CHECK(cudaSetDevice(0));
    RL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    buffers_.clear();
    cudaStreamDestroy(stream_);
  }

  const char* name() const override { return "cuda"; }

  float* alloc(size_t count) override { return static_cast<float*>(device(count * sizeof(float))); }

  void copy_to_host(const float* src, size_t count, float* dst) override {
    RL_CUDA_CHECK(cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    RL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void embed(const Weight& table, const int32_t* tokens, int n, float* out) override {
    int32_t* d_tokens = static_cast<int32_t*>(scratch(tokens_, n * sizeof(int32_t)));
    RL_CUDA_CHECK(cudaMemcpyAsync(d_tokens, tokens, n * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
    cuda::embed(upload(table), weight_type(table.dtype), table.cols, d_tokens, n, out, stream_);
  }

  void rmsnorm(const float* x, const Weight& weight, int n, float eps, float* out) override {
    cuda::rmsnorm(x, upload(weight), weight_type(weight.dtype), n, weight.cols, eps, out, stream_);
  }

  void matmul(const float* x, int n, const Weight& w, const Weight* bias, float* y) override {
    const float* b = bias ? upload_f32(*bias) : nullptr;
    if (w.cols % 8 == 0) matvec(x, n, upload(w), weight_type(w.dtype), w.rows, w.cols, b, y, stream_);
    else matvec_any(x, n, upload(w), weight_type(w.dtype), w.rows, w.cols, b, y, stream_);
  }

  void rope(float* x, int n, int heads, int head_dim, int pos0, const float* inv_freq) override {
    const Weight freq{DType::F32, inv_freq, 1, head_dim / 2};  // the model's, fixed for its life
    cuda::rope(x, n, heads, head_dim, pos0, static_cast<const float*>(upload(freq)), stream_);
  }

  void swiglu(const float* gate, const float* up, size_t count, float* out) override {
    cuda::swiglu(gate, up, count, out, stream_);
  }

  void add(float* x, const float* y, size_t count) override { cuda::add(x, y, count, stream_); }

  void kv_write(KvCache& kv, int seq, int layer, int pos0, int n, const float* k, const float* v) override {
    bind(kv);
    const KvCacheShape& s = kv.shape();
    const std::vector<int>& table = kv.blocks(seq);
    const size_t stride = size_t(s.n_kv_heads) * s.head_dim;
    // Blocks the mirror held exactly before this write stay exact after it.
    std::vector<int> in_sync;
    for (int lb = pos0 / s.block_size; lb <= (pos0 + n - 1) / s.block_size; lb++) {
      if (seen_[table[lb]] == kv.block_version(table[lb])) in_sync.push_back(table[lb]);
    }
    kv_append(layer_view(layer, upload_table(table)), pos0, n, k, v, stream_);
    // Write-through: the host cache stays the truth for forks, kv_io and the CPU's PrHS view.
    host_kv_.resize(2 * n * stride);
    RL_CUDA_CHECK(cudaMemcpyAsync(host_kv_.data(), k, n * stride * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    RL_CUDA_CHECK(cudaMemcpyAsync(host_kv_.data() + n * stride, v, n * stride * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    RL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int t = 0; t < n; t++) kv.write(seq, layer, pos0 + t, host_kv_.data() + t * stride, host_kv_.data() + (n + t) * stride);
    for (int block : in_sync) seen_[block] = kv.block_version(block);
  }

  void attention(const KvCache& kv, int seq, int layer, int pos0, int n, int n_heads, const float* q, float* out) override {
    bind(kv);
    const KvCacheShape& s = kv.shape();
    const std::vector<int>& table = kv.blocks(seq);
    const int used = (pos0 + n + s.block_size - 1) / s.block_size;
    for (int lb = 0; lb < used; lb++) refresh(kv, table[lb]);
    // transformers: scores * head_dim ** -0.5, the Python float applied in float32 (as cpu/attention.cc).
    const float scale = static_cast<float>(std::pow(static_cast<double>(s.head_dim), -0.5));
    const size_t workspace = dense_attention_workspace_floats(n, n_heads, s.head_dim, pos0);
    float* w = workspace ? static_cast<float*>(scratch(attention_workspace_, workspace * sizeof(float))) : nullptr;
    dense_attention(layer_view(layer, upload_table(table)), pos0, n, n_heads, scale, q, out, w, stream_);
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
      buffer = std::make_unique<DeviceBuffer>(bytes);
      capacity_[&buffer] = bytes;
    }
    return buffer->ptr;
  }

  // The device copy of a weight in its stored dtype, uploaded on first use.
  const void* upload(const Weight& w) {
    auto it = weights_.find(w.data);
    if (it != weights_.end()) return it->second;
    const size_t bytes = size_t(w.rows) * w.cols * dtype_bytes(w.dtype);
    void* d = device(bytes);
    RL_CUDA_CHECK(cudaMemcpy(d, w.data, bytes, cudaMemcpyHostToDevice));
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
    RL_CUDA_CHECK(cudaMemcpy(d, host.data(), count * sizeof(float), cudaMemcpyHostToDevice));
    biases_.emplace(w.data, d);
    return d;
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
    seen_.assign(s.n_blocks, ~uint64_t(0));  // nothing mirrored yet
    bound_ = &kv;
  }

  // Re-uploads a physical block (every layer) when the host changed it behind the mirror's back.
  void refresh(const KvCache& kv, int block) {
    const uint64_t version = kv.block_version(block);
    if (seen_[block] == version) return;
    for (int layer = 0; layer < kv.shape().n_layers; layer++) {
      const size_t at = layer * layer_floats_ + block * block_floats_;
      RL_CUDA_CHECK(cudaMemcpyAsync(keys_ + at, kv.keys(layer, block, 0), block_floats_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
      RL_CUDA_CHECK(cudaMemcpyAsync(values_ + at, kv.values(layer, block, 0), block_floats_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
    }
    seen_[block] = version;
  }

  const int* upload_table(const std::vector<int>& table) {
    int* d = static_cast<int*>(scratch(table_, table.size() * sizeof(int)));
    RL_CUDA_CHECK(cudaMemcpyAsync(d, table.data(), table.size() * sizeof(int), cudaMemcpyHostToDevice, stream_));
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
  std::unique_ptr<DeviceBuffer> tokens_, table_, attention_workspace_;
  std::vector<float> host_kv_;  // [2][n][kv_heads][head_dim] pinned-free staging for the write-through

  const KvCache* bound_ = nullptr;
  float* keys_ = nullptr;    // [n_layers][n_blocks][n_kv_heads][block_size][head_dim]
  float* values_ = nullptr;  // same
  size_t block_floats_ = 0, layer_floats_ = 0;
  std::vector<uint64_t> seen_;  // per physical block: the KvCache::block_version the mirror holds
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace rl::cuda
