// The deferred write-through's host side on threads of its own (CudaBackend::kv_write): the keys
// and values a prefill stages in pinned memory are copied into the host KvCache (~2 GB at 32K tokens
// for a 1.5B model) while the launching thread goes on launching the GPU's work; a 32K prefill on
// the H100 took ~0.5 s, so they must store ~4 GB/s. One batch at a
// time, its writes shared by a few threads by stretches of positions; the caller counts them in the cache first
// (KvCache::note_writes), these threads only copy (KvCache::store).
#pragma once
#include <cuda_runtime.h>

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace rl {
class KvCache;
}

namespace rl::cuda {

class KvWriter {
 public:
  struct Write {  // KvCache::store's arguments
    int seq, layer, pos0, n;
    const float* keys;    // [n][n_kv_heads][head_dim]
    const float* values;  // [n][n_kv_heads][head_dim]
    size_t stride;        // n_kv_heads * head_dim
  };

  KvWriter();
  ~KvWriter();  // drops a batch not yet begun
  KvWriter(const KvWriter&) = delete;
  KvWriter& operator=(const KvWriter&) = delete;

  // Stores `writes` into `kv` (KvCache::store) once `ready` has completed on the device, after
  // waiting for the batch before (wait()). The memory they point to must stay until then.
  void start(KvCache& kv, cudaEvent_t ready, std::vector<Write> writes);
  // Returns once the batch started last is stored; rethrows its first error.
  void wait();

 private:
  void run(int share);

  const int count_;  // threads

  std::mutex mutex_;
  std::condition_variable changed_;
  KvCache* kv_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  std::vector<Write> writes_;
  unsigned long batch_ = 0;  // batches started
  int busy_ = 0;             // threads still storing the latest
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;  // last: they start once the members above exist
};

}  // namespace rl::cuda
