// A small persistent pool of worker threads for the CPU ops. run() hands out task indices
// [0, n_tasks) to the workers and the calling thread alike and returns when all are done.
// No allocation per call: the task is a function pointer and a context pointer.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace rl {

class ThreadPool {
 public:
  // `threads` in all, the caller included (0: one per core this process may use).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(ctx, task, worker) for every task; worker in [0, size()) names a per-thread scratch slot.
  void run(int n_tasks, void (*fn)(void* ctx, int task, int worker), void* ctx);

  template <class F>
  void parallel_for(int n_tasks, F&& f) {
    using Fn = std::remove_reference_t<F>;
    run(n_tasks, [](void* c, int task, int worker) { (*static_cast<Fn*>(c))(task, worker); }, &f);
  }

 private:
  void work_loop(int worker);
  void drain(int worker);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  long generation_ = 0;
  int busy_ = 0;  // workers still inside the current generation
  bool stop_ = false;

  void (*fn_)(void*, int, int) = nullptr;
  void* ctx_ = nullptr;
  int n_tasks_ = 0;
  std::atomic<int> next_task_{0};
};

}  // namespace rl
