#include "kv_writer.cuh"

#include <algorithm>
#include <utility>

#include "cuda_check.cuh"
#include "kv/kv_cache.h"

namespace rl::cuda {

// A few threads: one copies at ~10 GB/s into fresh pages, about what a prefill stages on an H100.
KvWriter::KvWriter() : count_(std::clamp(int(std::thread::hardware_concurrency()) / 4, 1, 3)) {
  for (int i = 0; i < count_; i++) threads_.emplace_back([this, i] { run(i); });
}

KvWriter::~KvWriter() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void KvWriter::start(KvCache& kv, cudaEvent_t ready, std::vector<Write> writes) {
  wait();
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    kv_ = &kv;
    ready_ = ready;
    writes_ = std::move(writes);
    busy_ = count_;
    batch_++;
  }
  changed_.notify_all();
}

void KvWriter::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return busy_ == 0; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

// Thread `share` stores the batch's writes of the layers l with l % count_ == share, in order: a
// layer's writes may touch one block (its summary) one after another, other layers' never.
void KvWriter::run(int share) {
  std::unique_lock<std::mutex> lock(mutex_);
  unsigned long done = 0;
  for (;;) {
    changed_.wait(lock, [&] { return batch_ != done || stop_; });
    if (stop_) return;
    done = batch_;
    lock.unlock();  // start() changes nothing while the batch is busy
    std::exception_ptr error;
    try {
      RL_CUDA_CHECK(cudaEventSynchronize(ready_));
      for (const Write& w : writes_) {
        if (w.layer % count_ == share) kv_->store(w.seq, w.layer, w.pos0, w.n, w.keys, w.values);
      }
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error && !error_) error_ = error;
    if (--busy_ == 0) changed_.notify_all();
  }
}

}  // namespace rl::cuda
