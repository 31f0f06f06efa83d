#include "kv_writer.cuh"

#include <utility>

#include "cuda_check.cuh"
#include "kv/kv_cache.h"

namespace rl::cuda {

KvWriter::KvWriter() : thread_([this] { run(); }) {}

KvWriter::~KvWriter() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void KvWriter::start(KvCache& kv, cudaEvent_t ready, std::vector<Write> writes) {
  wait();
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    kv_ = &kv;
    ready_ = ready;
    writes_ = std::move(writes);
    pending_ = true;
  }
  changed_.notify_all();
}

void KvWriter::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return !pending_; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void KvWriter::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this] { return pending_ || stop_; });
    if (stop_) return;
    lock.unlock();  // start() changes nothing while a batch is pending
    std::exception_ptr error;
    try {
      RL_CUDA_CHECK(cudaEventSynchronize(ready_));
      for (const Write& w : writes_) kv_->store(w.seq, w.layer, w.pos0, w.n, w.keys, w.values);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    writes_.clear();
    error_ = error;
    pending_ = false;
    changed_.notify_all();
  }
}

}  // namespace rl::cuda
