#include "kv/page_populator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23  // linux/mman.h since 5.14; older C libraries lack the name
#endif

namespace rl {

PagePopulator::~PagePopulator() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PagePopulator::populate(void* begin, size_t bytes) {
#ifdef __linux__
  if (bytes == 0) return;
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t from = reinterpret_cast<uintptr_t>(begin) / page * page;
  const uintptr_t to = (reinterpret_cast<uintptr_t>(begin) + bytes + page - 1) / page * page;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (refused_) return;
    queue_.push_back({reinterpret_cast<char*>(from), size_t(to - from)});
    if (!thread_.joinable()) thread_ = std::thread(&PagePopulator::run, this);
  }
  wake_.notify_one();
#else
  (void)begin, (void)bytes;
#endif
}

void PagePopulator::run() {
#ifdef __linux__
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const Range r = queue_.front();
    queue_.pop_front();
    lock.unlock();
    const bool ok = madvise(r.begin, r.bytes, MADV_POPULATE_WRITE) == 0;
    lock.lock();
    // EINVAL: a kernel before 5.14. ENOMEM and the like: the writes will fault and say so themselves.
    if (!ok) refused_ = true, queue_.clear();
  }
#endif
}

}  // namespace rl
