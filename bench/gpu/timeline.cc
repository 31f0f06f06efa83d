// A GPU timeline without Nsight Systems: a CUPTI injection library that records every kernel,
// memory copy and memset the process runs on the device, and every CUDA runtime call on the host,
// and writes them as CSV lines (kind,start_ns,end_ns,stream,name; a runtime call's thread in place of
// the stream) to $REPO_LENS_TIMELINE at exit.
// Build and use (any machine with the CUDA toolkit; bench/gpu/timeline.py reads the file):
//   g++ -std=c++17 -O2 -shared -fPIC -I/usr/local/cuda/include bench/gpu/timeline.cc \
//       -L/usr/local/cuda/lib64 -lcupti -o libtimeline.so
//   CUDA_INJECTION64_PATH=$PWD/libtimeline.so REPO_LENS_TIMELINE=t.csv forward_check --time ...
// Kernel records come from CUPTI's concurrent-kernel activity: timestamps on one clock for the GPU
// and the host's runtime calls, so gaps between kernels can be set beside what the host was doing.
#include <cupti.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <mutex>

namespace {

std::FILE* out = nullptr;
std::mutex out_mutex;
constexpr size_t kBufferBytes = 16 << 20;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(out_mutex);
  CUpti_Activity* record = nullptr;
  while (out && cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    switch (record->kind) {
      case CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL: {
        const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
        std::fprintf(out, "kernel,%llu,%llu,%u,%s\n", (unsigned long long)k->start, (unsigned long long)k->end, k->streamId, k->name);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMCPY: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
        std::fprintf(out, "memcpy,%llu,%llu,%u,kind%u %llu B\n", (unsigned long long)m->start, (unsigned long long)m->end, m->streamId,
                     unsigned(m->copyKind), (unsigned long long)m->bytes);
        break;
      }
      case CUPTI_ACTIVITY_KIND_MEMSET: {
        const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
        std::fprintf(out, "memset,%llu,%llu,%u,%llu B\n", (unsigned long long)m->start, (unsigned long long)m->end, m->streamId,
                     (unsigned long long)m->bytes);
        break;
      }
      case CUPTI_ACTIVITY_KIND_RUNTIME: {
        const auto* a = reinterpret_cast<const CUpti_ActivityAPI*>(record);
        const char* name = nullptr;
        cuptiGetCallbackName(CUPTI_CB_DOMAIN_RUNTIME_API, a->cbid, &name);
        std::fprintf(out, "api,%llu,%llu,%u,%s\n", (unsigned long long)a->start, (unsigned long long)a->end, a->threadId, name ? name : "?");
        break;
      }
      default:
        break;
    }
  }
  std::free(buffer);
}

void flush_at_exit() {
  cuptiActivityFlushAll(1);
  std::lock_guard<std::mutex> lock(out_mutex);
  if (out) std::fclose(out);
  out = nullptr;
}

}  // namespace

// Called by the CUDA driver when CUDA_INJECTION64_PATH names this library.
extern "C" int InitializeInjection() {
  const char* path = std::getenv("REPO_LENS_TIMELINE");
  out = std::fopen(path ? path : "timeline.csv", "w");
  if (!out) return 0;
  cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed);
  for (CUpti_ActivityKind kind : {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, CUPTI_ACTIVITY_KIND_MEMCPY, CUPTI_ACTIVITY_KIND_MEMSET,
                                  CUPTI_ACTIVITY_KIND_RUNTIME}) {
    cuptiActivityEnable(kind);
  }
  std::atexit(flush_at_exit);
  return 1;
}
