#include "cublaslt.cuh"

#include <dlfcn.h>
#include <library_types.h>  // cudaDataType (CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14): part of the toolkit

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>

namespace rl::cuda {
namespace {

// The few cuBLASLt declarations used here, declared by hand since no cuBLAS header is needed to
// build. Values and layouts as in NVIDIA's cublasLt.h and cublas_api.h (checked against the copies
// in github.com/ggerganov/llama.cpp, include/cuda/cublasLt.h and include/cuda/cublas_api.h, cuBLAS
// 11.9; the enum values are part of the ABI and unchanged since).
using Status = int;                     // cublasStatus_t
constexpr Status kSuccess = 0;          // CUBLAS_STATUS_SUCCESS
using Handle = struct cublasLtContext*;  // cublasLtHandle_t
using MatmulDesc = void*;               // cublasLtMatmulDesc_t (pointer to an opaque descriptor)
using Layout = void*;                   // cublasLtMatrixLayout_t
using Preference = void*;               // cublasLtMatmulPreference_t
struct Algo {                           // cublasLtMatmulAlgo_t
  uint64_t data[8];
};
struct HeuristicResult {  // cublasLtMatmulHeuristicResult_t
  Algo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};
constexpr int kCompute32F = 68;            // cublasComputeType_t CUBLAS_COMPUTE_32F
constexpr int kOpN = 0, kOpT = 1;          // cublasOperation_t CUBLAS_OP_N, CUBLAS_OP_T
constexpr int kDescTransA = 3, kDescTransB = 4;  // cublasLtMatmulDescAttributes_t CUBLASLT_MATMUL_DESC_TRANSA, _TRANSB (int32_t)
constexpr int kPrefMaxWorkspaceBytes = 1;  // cublasLtMatmulPreferenceAttributes_t CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64_t)
// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32_t, default 256): the pointers'
// alignment, so the heuristic keeps to algorithms that can read them.
constexpr int kPrefMinAlignmentA = 5, kPrefMinAlignmentB = 6, kPrefMinAlignmentC = 7, kPrefMinAlignmentD = 8;

struct Api {
  size_t (*GetVersion)();
  Status (*Create)(Handle*);
  Status (*MatmulDescCreate)(MatmulDesc*, int compute_type, cudaDataType scale_type);
  Status (*MatmulDescSetAttribute)(MatmulDesc, int attr, const void* buf, size_t bytes);
  Status (*MatmulDescDestroy)(MatmulDesc);
  Status (*MatrixLayoutCreate)(Layout*, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*MatrixLayoutDestroy)(Layout);
  Status (*MatmulPreferenceCreate)(Preference*);
  Status (*MatmulPreferenceSetAttribute)(Preference, int attr, const void* buf, size_t bytes);
  Status (*MatmulPreferenceDestroy)(Preference);
  Status (*MatmulAlgoGetHeuristic)(Handle, MatmulDesc, Layout a, Layout b, Layout c, Layout d, Preference, int requested,
                                   HeuristicResult* results, int* returned);
  Status (*Matmul)(Handle, MatmulDesc, const void* alpha, const void* a, Layout, const void* b, Layout, const void* beta,
                   const void* c, Layout, void* d, Layout, const Algo*, void* workspace, size_t workspace_bytes,
                   cudaStream_t);
};

// The process's one library and handle, made on first use and kept until the process ends: the
// stream goes with each cublasLtMatmul, every CUDA backend runs on GPU 0 (current when the handle
// is made), and the chosen algorithms depend on the shape alone, so every backend (and
// bench/gpu/capi.cu, which has none) shares them; unloading at exit would race the runtime's own
// teardown. Each caller owns the device workspace it passes (a backend's is freed with it).
struct Library {
  Api api{};
  Handle handle = nullptr;
  size_t version = 0;
};

std::atomic<bool> g_failed{false};  // a call failed: our kernels from then on

void log_not_used(const std::string& why) { std::fprintf(stderr, "repo-lens: cuBLASLt not used: %s\n", why.c_str()); }

// Loads libcublasLt and resolves every function; the reason in `why` when it cannot.
bool load(Library& lib, std::string& why) {
  const char* env = std::getenv("REPO_LENS_CUBLASLT");
  if (env && std::string(env) == "0") {
    why = "REPO_LENS_CUBLASLT=0";
    return false;
  }
  void* so = nullptr;
  std::string name;
  for (const char* candidate : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}) {
    name = env && *env ? env : candidate;
    if ((so = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    if (env && *env) break;  // an explicit path is the only one tried
  }
  if (!so) {
    const char* err = dlerror();
    why = env && *env ? "cannot load " + std::string(err ? err : name.c_str()) : "libcublasLt.so.13 / .so.12 / .so not found";
    return false;
  }
  bool complete = true;
  auto resolve = [&](auto& fn, const char* symbol) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(so, symbol));
    if (!fn && complete) why = name + " lacks " + symbol, complete = false;
  };
  Api& a = lib.api;
  resolve(a.GetVersion, "cublasLtGetVersion");
  resolve(a.Create, "cublasLtCreate");
  resolve(a.MatmulDescCreate, "cublasLtMatmulDescCreate");
  resolve(a.MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
  resolve(a.MatmulDescDestroy, "cublasLtMatmulDescDestroy");
  resolve(a.MatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
  resolve(a.MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
  resolve(a.MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
  resolve(a.MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
  resolve(a.MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
  resolve(a.MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
  resolve(a.Matmul, "cublasLtMatmul");
  if (!complete) return false;
  lib.version = a.GetVersion();
  if (lib.version < 110000) {  // CUBLAS_COMPUTE_32F and the cudaDataType-based descriptors came with 11.0
    why = name + " is version " + std::to_string(lib.version) + "; 11.0 or newer needed";
    return false;
  }
  const Status s = a.Create(&lib.handle);
  if (s != kSuccess) {
    why = "cublasLtCreate returned status " + std::to_string(s);
    return false;
  }
  return true;
}

// The library when loaded and not failed since, else null.
Library* library() {
  static Library lib;
  static const bool loaded = [] {
    std::string why;
    const bool ok = load(lib, why);
    if (!ok) log_not_used(why);
    return ok;
  }();
  return loaded && !g_failed.load() ? &lib : nullptr;
}

// Off for the process after a failed call: once, with the call and its status.
bool fail(const char* call, Status s) {
  if (!g_failed.exchange(true)) log_not_used(std::string(call) + " returned status " + std::to_string(s) + "; our kernels from now on");
  return false;
}

// One product shape's descriptors and algorithm, chosen once (the heuristic's first answer).
struct Plan {
  MatmulDesc desc = nullptr;
  Layout a = nullptr, b = nullptr, d = nullptr;
  Algo algo{};
  bool usable = false;  // false: no algorithm for this shape (our kernel takes it)
};
// type, rows, cols, n, alignments of W, x16, y, and whether y is in the 16-bit type
using PlanKey = std::tuple<int, int, int, int, unsigned, unsigned, unsigned, bool>;

unsigned alignment(const void* p) {  // of a pointer, in bytes, up to the heuristic's default 256
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  unsigned a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

// Fills `plan` for D (rows x n, fp32 or the 16-bit type) = op_T(A) . B (+ C) in column-major terms: A = W (cols x rows, ld
// cols), B = x16 (cols x n, ld cols), D = y (rows x n, ld rows), C laid out as D. False when a call failed.
bool make_plan(const Library& lib, const PlanKey& key, Plan& plan) {
  const auto [type, rows, cols, n, align_w, align_x, align_y, y16] = key;
  const Api& a = lib.api;
  const cudaDataType t16 = type == int(WeightType::BF16) ? CUDA_R_16BF : CUDA_R_16F;
  const int32_t trans_a = kOpT, trans_b = kOpN;
  Status s;
  if ((s = a.MatmulDescCreate(&plan.desc, kCompute32F, CUDA_R_32F)) != kSuccess) return fail("cublasLtMatmulDescCreate", s);
  if ((s = a.MatmulDescSetAttribute(plan.desc, kDescTransA, &trans_a, sizeof trans_a)) != kSuccess ||
      (s = a.MatmulDescSetAttribute(plan.desc, kDescTransB, &trans_b, sizeof trans_b)) != kSuccess)
    return fail("cublasLtMatmulDescSetAttribute", s);
  if ((s = a.MatrixLayoutCreate(&plan.a, t16, cols, rows, cols)) != kSuccess ||
      (s = a.MatrixLayoutCreate(&plan.b, t16, cols, n, cols)) != kSuccess ||
      (s = a.MatrixLayoutCreate(&plan.d, y16 ? t16 : CUDA_R_32F, rows, n, rows)) != kSuccess)
    return fail("cublasLtMatrixLayoutCreate", s);
  Preference pref = nullptr;
  if ((s = a.MatmulPreferenceCreate(&pref)) != kSuccess) return fail("cublasLtMatmulPreferenceCreate", s);
  const uint64_t workspace = kCublasLtWorkspaceBytes;
  const uint32_t aligns[4] = {align_w, align_x, align_y, align_y};
  const int align_attrs[4] = {kPrefMinAlignmentA, kPrefMinAlignmentB, kPrefMinAlignmentC, kPrefMinAlignmentD};
  s = a.MatmulPreferenceSetAttribute(pref, kPrefMaxWorkspaceBytes, &workspace, sizeof workspace);
  for (int i = 0; i < 4 && s == kSuccess; ++i) s = a.MatmulPreferenceSetAttribute(pref, align_attrs[i], &aligns[i], sizeof aligns[i]);
  HeuristicResult result{};
  int returned = 0;
  if (s == kSuccess) s = a.MatmulAlgoGetHeuristic(lib.handle, plan.desc, plan.a, plan.b, plan.d, plan.d, pref, 1, &result, &returned);
  a.MatmulPreferenceDestroy(pref);
  if (s != kSuccess) return fail("cublasLtMatmulAlgoGetHeuristic", s);
  plan.usable = returned > 0 && result.state == kSuccess && result.workspaceSize <= kCublasLtWorkspaceBytes;
  plan.algo = result.algo;
  if (!plan.usable) {  // this shape only: the descriptors go, the answer stays cached
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      std::fprintf(stderr, "repo-lens: cuBLASLt has no algorithm for %d x %d by %d tokens (and perhaps other shapes); our kernel takes them\n",
                   rows, cols, n);
    a.MatrixLayoutDestroy(plan.d), a.MatrixLayoutDestroy(plan.b), a.MatrixLayoutDestroy(plan.a), a.MatmulDescDestroy(plan.desc);
    plan = Plan{};
  }
  return true;
}

}  // namespace

size_t cublaslt_version() {
  const Library* lib = library();
  return lib ? lib->version : 0;
}

bool cublaslt_matmul(WeightType type, int rows, int cols, int n, const void* w, const void* x16, void* y,
                     void* workspace, cudaStream_t stream, const float* residual, bool y16) {
  Library* lib = library();
  if (!lib || type == WeightType::F32 || (y16 && residual)) return false;
  // Plans are made once per shape and never freed (a prefill sees a handful of shapes and chunk
  // lengths); the lock covers the map only while a plan is looked up or made.
  static std::mutex mutex;
  static std::map<PlanKey, Plan> plans;
  const PlanKey key{int(type), rows, cols, n, alignment(w), alignment(x16), std::min(alignment(y), residual ? alignment(residual) : 256u), y16};
  Plan plan;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = plans.find(key);
    if (it == plans.end()) {
      Plan made;
      if (!make_plan(*lib, key, made)) return false;
      it = plans.emplace(key, made).first;
    }
    plan = it->second;
  }
  if (!plan.usable) return false;
  const float alpha = 1.f, beta = residual ? 1.f : 0.f;
  const void* c = residual ? static_cast<const void*>(residual) : y;
  const Status s = lib->api.Matmul(lib->handle, plan.desc, &alpha, w, plan.a, x16, plan.b, &beta, c, plan.d, y,
                                   plan.d, &plan.algo, workspace, kCublasLtWorkspaceBytes, stream);
  return s == kSuccess || fail("cublasLtMatmul", s);
}

}  // namespace rl::cuda
