#include "kv_writer.cuh"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "cuda_check.cuh"
#include "kv/kv_cache.h"

namespace rl::cuda {

namespace {
// Half the cores, up to 8: on the H100 machine (16 cores) a 32K Half prefill took 0.59 s with one,
// 0.49-0.57 with 3 and 0.49 with 8, where 0.48 stored nothing (bench/gpu/NOTES.md, session 19).
// REPO_LENS_CUDA_KV_WRITERS=N sets the count (A/B timing).
int writer_count() {
  const char* v = std::getenv("REPO_LENS_CUDA_KV_WRITERS");
  const int asked = v ? std::atoi(v) : 0;
  return asked > 0 ? std::min(asked, 16) : std::clamp(int(std::thread::hardware_concurrency()) / 2, 1, 8);
}
}  // namespace

KvWriter::KvWriter() : count_(writer_count()) {
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

// Thread `share` stores its stretches of the batch's writes, in order. A write is cut every ~512
// positions (whole blocks), and a stretch goes to the thread its (layer, stretch) names: two writes
// of one layer that touch one block (its summary) fall in the same stretch, so one thread stores them
// in their order.
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
      const int bs = kv_->shape().block_size, per = bs * std::max(1, 512 / bs);
      for (const Write& w : writes_) {
        for (int pos = w.pos0; pos < w.pos0 + w.n;) {
          const int stretch = pos / per, end = std::min(w.pos0 + w.n, (stretch + 1) * per);
          if ((w.layer + stretch) % count_ == share) {
            const size_t at = size_t(pos - w.pos0) * w.stride;
            kv_->store(w.seq, w.layer, pos, end - pos, w.keys + at, w.values + at);
          }
          pos = end;
        }
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
