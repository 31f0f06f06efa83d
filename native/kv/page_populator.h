// Commits the pages of address ranges on a background thread, ahead of the writes that will fill
// them. The KV cache maps its storage lazily (MAP_NORESERVE), so the first write to each 4 KiB page
// takes a page fault; a long prefill writes gigabytes (7.5 GB at 128K tokens for a 1.5B model), and
// those faults on the thread that also launches the GPU's work held the CUDA prefill back (session 10).
// Populating only commits pages earlier: contents are never changed, so writes may run before,
// during or after it. Linux's MADV_POPULATE_WRITE (5.14+); elsewhere, or where the kernel refuses
// it, nothing is done and the writes fault as before.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>

namespace rl {

class PagePopulator {
 public:
  PagePopulator() = default;
  ~PagePopulator();  // drops what is queued and joins the thread: the ranges may be unmapped after
  PagePopulator(const PagePopulator&) = delete;
  PagePopulator& operator=(const PagePopulator&) = delete;

  // Queues [begin, begin + bytes) (rounded out to whole pages); returns at once.
  void populate(void* begin, size_t bytes);

 private:
  struct Range {
    char* begin;
    size_t bytes;
  };
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Range> queue_;
  bool stop_ = false;
  bool refused_ = false;  // the kernel said no once: never again
  std::thread thread_;    // started by the first populate
};

}  // namespace rl
