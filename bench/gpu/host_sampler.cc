// A wall-clock sampling profiler of the main thread, for the GPU machine (it has neither nsys nor
// perf): where the host's time goes between kernels, waits included. Linked into forward_check by
// `REPO_LENS_HOST_SAMPLER=1 sh bench/gpu/build_forward_check.sh`; RL_SAMPLE=<microseconds> turns it on,
// and at exit every sample's stack is written, one line each, to RL_SAMPLE_OUT (else stderr), for
// bench/gpu/host_samples.py to name and count. Not part of the extension.
#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>

namespace {
constexpr int kDepth = 40;     // frames kept per sample
constexpr int kMax = 400000;   // samples kept (200 s at 0.5 ms)
void* g_frames[kMax][kDepth];  // filled by the signal handler only
int g_depth[kMax];
volatile int g_n = 0;
timer_t g_timer;

// The timer's signal, on the main thread: its stack. backtrace() is not async-signal-safe in
// general; its one allocation (loading libgcc) is made before the timer starts.
void on_tick(int) {
  const int i = g_n;
  if (i >= kMax) return;
  g_depth[i] = backtrace(g_frames[i], kDepth);
  g_n = i + 1;
}

// A frame's name: the symbol where the dynamic table has it, else "@0x<offset>" in the executable
// (named afterwards by host_samples.py), else the library's file.
std::string name_of(void* p) {
  Dl_info info;
  if (!dladdr(p, &info)) return "?";
  if (info.dli_sname) {
    int status = 0;
    char* d = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    std::string s = status == 0 && d ? d : info.dli_sname;
    free(d);
    return s.size() > 200 ? s.substr(0, 200) : s;
  }
  Dl_info self;
  dladdr(reinterpret_cast<void*>(&name_of), &self);
  if (info.dli_fbase == self.dli_fbase) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "@0x%lx", static_cast<unsigned long>(static_cast<char*>(p) - static_cast<char*>(info.dli_fbase) - 1));
    return buf;
  }
  return std::string("[") + (info.dli_fname ? info.dli_fname : "?") + "]";
}

// Every sample's frames, outermost last, one line each (frame names joined by " | ").
void report() {
  timer_delete(g_timer);
  const int n = g_n;
  const char* path = std::getenv("RL_SAMPLE_OUT");
  FILE* out = path ? std::fopen(path, "w") : stderr;
  if (!out) return;
  std::map<void*, std::string> names;
  for (int i = 0; i < n; i++) {
    for (int f = 2; f < g_depth[i]; f++) {  // 0: on_tick, 1: the signal trampoline
      auto it = names.find(g_frames[i][f]);
      if (it == names.end()) it = names.emplace(g_frames[i][f], name_of(g_frames[i][f])).first;
      std::fprintf(out, "%s%s", f > 2 ? " | " : "", it->second.c_str());
    }
    std::fprintf(out, "\n");
  }
  if (out != stderr) std::fclose(out);
}

// Starts the timer at load time when RL_SAMPLE is set: a clock
// (CLOCK_MONOTONIC: wall time, so waits are sampled too) signalling the loading thread.
struct Start {
  Start() {
    const char* us = std::getenv("RL_SAMPLE");
    if (!us) return;
    void* warm[4];
    backtrace(warm, 4);  // loads libgcc before the first signal
    struct sigaction sa{};
    sa.sa_handler = on_tick;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGRTMIN + 3, &sa, nullptr);
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGRTMIN + 3;
    ev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
    if (timer_create(CLOCK_MONOTONIC, &ev, &g_timer) != 0) return;
    const long period_ns = std::atol(us) * 1000;
    itimerspec it{};
    it.it_interval.tv_sec = it.it_value.tv_sec = period_ns / 1000000000;
    it.it_interval.tv_nsec = it.it_value.tv_nsec = period_ns % 1000000000;
    timer_settime(g_timer, 0, &it, nullptr);
    std::atexit(report);
  }
} start;
}  // namespace
