// The N-API surface of the engine (src/model/native.ts describes it for TypeScript): argument
// checking and conversion only. Every C++ exception becomes a JavaScript Error with its message,
// so bad input never takes the process down.
#define NODE_ADDON_API_CPP_EXCEPTIONS_ALL
#include <napi.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "cpu/cpu_backend.h"
#include "kv/kv_cache.h"
#include "kv/kv_io.h"
#include "model/model.h"
#include "model/rope_freq.h"
#include "prhs/attention_napi.h"
#ifdef REPO_LENS_CUDA
#include "cuda/backend_cuda.h"
#include "cuda/device_status.h"
#endif

namespace {

using rl::Model;

// ---- argument reading -------------------------------------------------------------------------

[[noreturn]] void type_error(const Napi::Env& env, const std::string& what) { throw Napi::TypeError::New(env, what); }

Napi::Value field(const Napi::Object& o, const char* key, const std::string& where) {
  if (!o.Has(key)) type_error(o.Env(), where + "." + key + " is missing");
  return o.Get(key);
}

double number(const Napi::Value& v, const std::string& where) {
  if (!v.IsNumber()) type_error(v.Env(), where + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) type_error(v.Env(), where + " must be finite");
  return d;
}

int integer(const Napi::Value& v, const std::string& where, int min) {
  const double d = number(v, where);
  if (d != std::floor(d) || d < min || d > 2147483647.0) type_error(v.Env(), where + " must be an integer >= " + std::to_string(min));
  return static_cast<int>(d);
}

int arg_int(const Napi::CallbackInfo& info, size_t i, const char* name, int min = 0) {
  return integer(info[i], std::string(name), min);
}

std::string str(const Napi::Value& v, const std::string& where) {
  if (!v.IsString()) type_error(v.Env(), where + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Float32Array floats(const Napi::Value& v, const std::string& where, size_t expected) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) type_error(v.Env(), where + " must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  if (a.ElementLength() != expected) type_error(v.Env(), where + " must hold " + std::to_string(expected) + " floats, found " + std::to_string(a.ElementLength()));
  return a;
}

rl::ModelSpec read_spec(const Napi::Object& spec) {
  const Napi::Env env = spec.Env();
  rl::ModelSpec s;
  const Napi::Value arch_value = field(spec, "arch", "spec");
  if (!arch_value.IsObject()) type_error(env, "spec.arch must be an object");
  const Napi::Object arch = arch_value.As<Napi::Object>();
  auto arch_int = [&](const char* key) { return integer(field(arch, key, "spec.arch"), std::string("spec.arch.") + key, 1); };
  rl::ModelArch& a = s.arch;
  a.hidden_size = arch_int("hiddenSize");
  a.intermediate_size = arch_int("intermediateSize");
  a.num_layers = arch_int("numLayers");
  a.num_heads = arch_int("numHeads");
  a.num_kv_heads = arch_int("numKvHeads");
  a.head_dim = arch_int("headDim");
  a.vocab_size = arch_int("vocabSize");
  a.max_positions = arch_int("maxPositions");
  a.rms_norm_eps = static_cast<float>(number(field(arch, "rmsNormEps", "spec.arch"), "spec.arch.rmsNormEps"));
  a.rope_theta = number(field(arch, "ropeTheta", "spec.arch"), "spec.arch.ropeTheta");
  if (a.rope_theta <= 0 || a.rms_norm_eps < 0) type_error(env, "spec.arch.ropeTheta must be positive and rmsNormEps not negative");
  a.attention_bias = field(arch, "attentionBias", "spec.arch").ToBoolean();
  a.tie_embeddings = field(arch, "tieEmbeddings", "spec.arch").ToBoolean();
  const Napi::Value scaling = field(arch, "ropeScaling", "spec.arch");
  if (!scaling.IsNull() && !scaling.IsUndefined()) {
    if (!scaling.IsObject()) type_error(env, "spec.arch.ropeScaling must be an object or null");
    const Napi::Object rs = scaling.As<Napi::Object>();
    if (str(field(rs, "type", "spec.arch.ropeScaling"), "spec.arch.ropeScaling.type") != "llama3") type_error(env, "spec.arch.ropeScaling.type must be \"llama3\"");
    auto positive = [&](const char* key) {
      const double d = number(field(rs, key, "spec.arch.ropeScaling"), std::string("spec.arch.ropeScaling.") + key);
      if (d <= 0) type_error(env, std::string("spec.arch.ropeScaling.") + key + " must be positive");
      return static_cast<float>(d);
    };
    a.rope_scaling.llama3 = true;
    a.rope_scaling.factor = positive("factor");
    a.rope_scaling.low_freq_factor = positive("lowFreqFactor");
    a.rope_scaling.high_freq_factor = positive("highFreqFactor");
    a.rope_scaling.original_max_positions = positive("originalMaxPositions");
  }

  const Napi::Value tensors = field(spec, "tensors", "spec");
  if (!tensors.IsArray()) type_error(env, "spec.tensors must be an array");
  const Napi::Array list = tensors.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    const std::string where = "spec.tensors[" + std::to_string(i) + "]";
    const Napi::Value tv = list.Get(i);
    if (!tv.IsObject()) type_error(env, where + " must be an object");
    const Napi::Object t = tv.As<Napi::Object>();
    rl::TensorSpec ts;
    ts.name = str(field(t, "name", where), where + ".name");
    ts.file = str(field(t, "file", where), where + ".file");
    ts.dtype = str(field(t, "dtype", where), where + ".dtype");
    const Napi::Value shape = field(t, "shape", where);
    if (!shape.IsArray()) type_error(env, where + ".shape must be an array");
    const Napi::Array dims = shape.As<Napi::Array>();
    for (uint32_t d = 0; d < dims.Length(); d++) ts.shape.push_back(integer(dims.Get(d), where + ".shape", 0));
    const double begin = number(field(t, "begin", where), where + ".begin");
    const double end = number(field(t, "end", where), where + ".end");
    if (begin < 0 || end < begin || begin != std::floor(begin) || end != std::floor(end) || end > 9007199254740991.0) {
      type_error(env, where + ": begin and end must be integers with 0 <= begin <= end");
    }
    ts.begin = static_cast<uint64_t>(begin);
    ts.end = static_cast<uint64_t>(end);
    s.tensors.push_back(std::move(ts));
  }
  s.kv_block_size = integer(field(spec, "kvBlockSize", "spec"), "spec.kvBlockSize", 1);
  s.threads = integer(field(spec, "threads", "spec"), "spec.threads", 0);
  s.context_tokens = integer(field(spec, "contextTokens", "spec"), "spec.contextTokens", 1);
  if (spec.Has("kvBlocks") && !spec.Get("kvBlocks").IsUndefined()) s.kv_blocks = integer(spec.Get("kvBlocks"), "spec.kvBlocks", 0);
  return s;
}

// ---- backends -----------------------------------------------------------------------------------

struct BackendInfo {
  std::string name;
  bool available;
  std::string reason;  // why not, when unavailable
};

// What this build has. A CUDA build adds its entry here (with the driver's verdict).
std::vector<BackendInfo> backend_list() {
#ifdef REPO_LENS_CUDA
  const rl::cuda::DeviceStatus gpu = rl::cuda::device_status();
  return {{"cpu", true, ""}, {"cuda", gpu.usable, gpu.usable ? "" : gpu.reason}};
#else
  return {{"cpu", true, ""}, {"cuda", false, "this build has no CUDA backend (nvcc was not found at build time, or REPO_LENS_CUDA=0)"}};
#endif
}

// spec.prefillPrecision: "float32" (default) or "half"; `half` is true for "half". Only the CUDA
// backend uses it (prefill_precision.cuh); the CPU backend accepts and ignores it.
bool read_half_prefill(const Napi::Object& spec) {
  const Napi::Value v = spec.Get("prefillPrecision");
  if (v.IsUndefined()) return false;
  const std::string allowed = "spec.prefillPrecision must be \"float32\" or \"half\"";
  if (!v.IsString()) type_error(spec.Env(), allowed);
  const std::string p = v.As<Napi::String>().Utf8Value();
  if (p != "float32" && p != "half") type_error(spec.Env(), allowed + ", found \"" + p + "\"");
  return p == "half";
}

std::unique_ptr<rl::Backend> make_backend(const Napi::Env& env, const std::string& name, int threads, bool half_prefill) {
  if (name == "cpu") return std::make_unique<rl::CpuBackend>(threads);  // half_prefill: no effect on the CPU
  for (const BackendInfo& b : backend_list()) {
#ifdef REPO_LENS_CUDA
    if (b.name == name && b.available && name == "cuda") {
      return rl::cuda::make_cuda_backend(half_prefill ? rl::cuda::PrefillPrecision::Half : rl::cuda::PrefillPrecision::Float32);
    }
#else
    (void)half_prefill;
#endif
    if (b.name == name) throw Napi::Error::New(env, "backend \"" + name + "\" cannot be used: " + b.reason);
  }
  type_error(env, "spec.backend must be \"cpu\" or \"cuda\", found \"" + name + "\"");
}

// ---- the model object -------------------------------------------------------------------------

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {InstanceMethod("newSequence", &ModelWrap::NewSequence), InstanceMethod("forkSequence", &ModelWrap::ForkSequence),
                        InstanceMethod("freeSequence", &ModelWrap::FreeSequence), InstanceMethod("truncateSequence", &ModelWrap::TruncateSequence),
                        InstanceMethod("sequenceLength", &ModelWrap::SequenceLength), InstanceMethod("forward", &ModelWrap::Forward),
                        InstanceMethod("stats", &ModelWrap::Stats), InstanceMethod("dispose", &ModelWrap::Dispose),
                        InstanceMethod("kvBlockSummary", &ModelWrap::KvBlockSummary),
                        InstanceMethod("setAttention", &ModelWrap::SetAttention),
                        InstanceMethod("attentionStep", &ModelWrap::AttentionStep),
                        InstanceMethod("attentionCounters", &ModelWrap::AttentionCounters),
                        InstanceMethod("exportKv", &ModelWrap::ExportKv), InstanceMethod("importKv", &ModelWrap::ImportKv),
                        InstanceMethod("appendRotated", &ModelWrap::AppendRotated), InstanceMethod("recompute", &ModelWrap::Recompute),
                        InstanceMethod("attentionMass", &ModelWrap::AttentionMass)});
  }

  // Constructed only by loadModel, which passes the loaded model as an External.
  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) type_error(info.Env(), "NativeModel is created by loadModel()");
    model_.reset(info[0].As<Napi::External<Model>>().Data());
  }

 private:
  Model& model(const Napi::Env& env) {
    if (!model_) throw Napi::Error::New(env, "the model was disposed");
    return *model_;
  }

  Napi::Value NewSequence(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), model(info.Env()).new_sequence()); }

  Napi::Value ForkSequence(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model(info.Env()).fork_sequence(arg_int(info, 0, "seq")));
  }

  void FreeSequence(const Napi::CallbackInfo& info) { model(info.Env()).free_sequence(arg_int(info, 0, "seq")); }

  void TruncateSequence(const Napi::CallbackInfo& info) {
    model(info.Env()).truncate_sequence(arg_int(info, 0, "seq"), arg_int(info, 1, "length"));
  }

  Napi::Value SequenceLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), model(info.Env()).sequence_length(arg_int(info, 0, "seq")));
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    Model& m = model(env);
    const int seq = arg_int(info, 0, "seq");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) type_error(env, "forward: tokens must be an Int32Array");
    const Napi::Int32Array tokens = info[1].As<Napi::Int32Array>();
    const std::string wanted = str(info[2], "forward: logits");
    rl::LogitsWanted mode;
    if (wanted == "none") mode = rl::LogitsWanted::None;
    else if (wanted == "last") mode = rl::LogitsWanted::Last;
    else if (wanted == "all") mode = rl::LogitsWanted::All;
    else type_error(env, "forward: logits must be \"none\", \"last\" or \"all\"");
    const int n = static_cast<int>(tokens.ElementLength());
    const size_t vocab = m.arch().vocab_size;
    const size_t count = mode == rl::LogitsWanted::All ? n * vocab : mode == rl::LogitsWanted::Last ? vocab : 0;
    constexpr size_t kMaxLogitFloats = size_t(1) << 28;  // 1 GiB of float32
    if (count > kMaxLogitFloats) {
      throw Napi::RangeError::New(env, "forward: \"all\" logits for " + std::to_string(n) + " tokens would take " + std::to_string(count * 4 >> 20) +
                                           " MiB; ask for \"last\" or forward fewer tokens at once");
    }
    Napi::Float32Array logits = Napi::Float32Array::New(env, count);
    m.forward(seq, tokens.Data(), n, mode, logits.Data());  // synchronous: JavaScript cannot touch tokens meanwhile
    return logits;
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const rl::ModelStats s = model(env).stats();
    Napi::Object o = Napi::Object::New(env);
    o.Set("tokensForwarded", Napi::Number::New(env, static_cast<double>(s.tokens_forwarded)));
    o.Set("kvBlocksInUse", Napi::Number::New(env, s.kv_blocks_in_use));
    o.Set("kvBlocksCapacity", Napi::Number::New(env, s.kv_blocks_capacity));
    o.Set("weightBytes", Napi::Number::New(env, static_cast<double>(s.weight_bytes)));
    o.Set("backend", Napi::String::New(env, s.backend));
    o.Set("backendDetail", Napi::String::New(env, s.backend_detail));
    return o;
  }

  void Dispose(const Napi::CallbackInfo&) { model_.reset(); }

  // Test accessor: the keys written to a logical block of a sequence and the block's summary.
  // Sparse decode attention (native/prhs/attention_napi.h).
  Napi::Value SetAttention(const Napi::CallbackInfo& info) {
    rl::prhs::set_attention(model(info.Env()), info.Length() > 0 ? info[0] : info.Env().Null());
    return info.Env().Undefined();
  }
  Napi::Value AttentionStep(const Napi::CallbackInfo& info) { return rl::prhs::attention_step(model(info.Env()), info.Env()); }
  Napi::Value AttentionCounters(const Napi::CallbackInfo& info) { return rl::prhs::attention_counters(model(info.Env()), info.Env()); }

  Napi::Value KvBlockSummary(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    Model& m = model(env);
    const int seq = arg_int(info, 0, "seq"), layer = arg_int(info, 1, "layer"), block = arg_int(info, 2, "block"), head = arg_int(info, 3, "kvHead");
    rl::KvCache& kv = m.kv();
    const rl::KvCacheShape& shape = kv.shape();
    const std::vector<int>& table = kv.blocks(seq);
    if (layer >= shape.n_layers || head >= shape.n_kv_heads || block >= static_cast<int>(table.size())) {
      throw Napi::RangeError::New(env, "kvBlockSummary: layer, block or kvHead out of range");
    }
    const int physical = table[block], fill = kv.block_fill(seq, block), hd = shape.head_dim;
    auto copy = [&](const float* src, size_t count) {
      Napi::Float32Array a = Napi::Float32Array::New(env, count);
      std::memcpy(a.Data(), src, count * sizeof(float));
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("keys", copy(kv.keys(layer, physical, head), static_cast<size_t>(fill) * hd));
    o.Set("min", copy(kv.key_min(layer, physical, head), hd));
    o.Set("max", copy(kv.key_max(layer, physical, head), hd));
    o.Set("physicalBlock", Napi::Number::New(env, physical));
    return o;
  }

  // The disk cache's access to a sequence's KV (native/kv/kv_io.h for the layout).
  // exportKv(seq, start, count) -> Float32Array [layers][2][count][kvHeads][headDim]
  Napi::Value ExportKv(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    rl::KvCache& kv = model(env).kv();
    const int seq = arg_int(info, 0, "seq"), start = arg_int(info, 1, "start"), count = arg_int(info, 2, "count");
    if (static_cast<int64_t>(start) + count > kv.length(seq)) throw Napi::RangeError::New(env, "exportKv: positions past the end of the sequence");
    Napi::Float32Array out = Napi::Float32Array::New(env, rl::kv_span_floats(kv.shape(), count));
    rl::kv_export(kv, seq, start, count, out.Data());
    return out;
  }

  // importKv(seq, span: Float32Array) appends the span's positions to seq.
  void ImportKv(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    rl::KvCache& kv = model(env).kv();
    const int seq = arg_int(info, 0, "seq");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) type_error(env, "importKv: span must be a Float32Array");
    const Napi::Float32Array span = info[1].As<Napi::Float32Array>();
    const size_t per_position = rl::kv_span_floats(kv.shape(), 1);
    if (span.ElementLength() % per_position != 0) {
      type_error(env, "importKv: span holds " + std::to_string(span.ElementLength()) + " floats, not a whole number of positions of " + std::to_string(per_position));
    }
    rl::kv_import(kv, seq, static_cast<int>(span.ElementLength() / per_position), span.Data());
  }

  // Per-file KV segments (native/model/segments.cc).
  // appendRotated(seq, span: Float32Array, from) appends a span prefilled at positions from.., keys re-rotated.
  void AppendRotated(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    Model& m = model(env);
    const int seq = arg_int(info, 0, "seq"), from = arg_int(info, 2, "from");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) type_error(env, "appendRotated: span must be a Float32Array");
    const Napi::Float32Array span = info[1].As<Napi::Float32Array>();
    const size_t per_position = rl::kv_span_floats(m.kv().shape(), 1);
    if (span.ElementLength() % per_position != 0) {
      type_error(env, "appendRotated: span holds " + std::to_string(span.ElementLength()) + " floats, not a whole number of positions of " + std::to_string(per_position));
    }
    m.append_rotated(seq, span.Data(), static_cast<int>(span.ElementLength() / per_position), from);
  }

  // recompute(seq, tokens: Int32Array, positions: Int32Array) runs tokens again at those positions.
  void Recompute(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    Model& m = model(env);
    const int seq = arg_int(info, 0, "seq");
    for (size_t i = 1; i <= 2; i++) {
      if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) type_error(env, "recompute: tokens and positions must be Int32Arrays");
    }
    const Napi::Int32Array tokens = info[1].As<Napi::Int32Array>(), positions = info[2].As<Napi::Int32Array>();
    if (tokens.ElementLength() != positions.ElementLength()) type_error(env, "recompute: tokens and positions must have the same length");
    m.recompute(seq, tokens.Data(), positions.Data(), static_cast<int>(tokens.ElementLength()));
  }

  // attentionMass(seq, tokens: Int32Array) -> Float32Array [sequenceLength(seq)]
  Napi::Value AttentionMass(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    Model& m = model(env);
    const int seq = arg_int(info, 0, "seq");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) type_error(env, "attentionMass: tokens must be an Int32Array");
    const Napi::Int32Array tokens = info[1].As<Napi::Int32Array>();
    const std::vector<float> mass = m.attention_mass(seq, tokens.Data(), static_cast<int>(tokens.ElementLength()));
    Napi::Float32Array out = Napi::Float32Array::New(env, mass.size());
    std::memcpy(out.Data(), mass.data(), mass.size() * sizeof(float));
    return out;
  }

  std::unique_ptr<Model> model_;
};

struct AddonData {
  Napi::FunctionReference model_class;
  std::unique_ptr<rl::CpuBackend> ops_backend;  // for addon.ops (tests)
};

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) type_error(env, "loadModel(spec): spec must be an object");
  const Napi::Object spec_object = info[0].As<Napi::Object>();
  const rl::ModelSpec spec = read_spec(spec_object);
  const Napi::Value backend = spec_object.Get("backend");
  const std::string backend_name = backend.IsUndefined() ? "cpu" : str(backend, "spec.backend");
  const bool half_prefill = read_half_prefill(spec_object);
  auto model = std::make_unique<Model>(spec, make_backend(env, backend_name, spec.threads, half_prefill));
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object wrapped = data->model_class.New({Napi::External<Model>::New(env, model.get())});
  model.release();  // owned by the wrapper now
  return wrapped;
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env);
  for (const BackendInfo& b : backend_list()) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", b.name);
    o.Set("available", b.available);
    if (!b.available) o.Set("reason", b.reason);
    list.Set(list.Length(), o);
  }
  return list;
}

// ---- addon.ops: each CPU op on its own, for the op tests ---------------------------------------

rl::Backend& ops_backend(const Napi::Env& env) { return *env.GetInstanceData<AddonData>()->ops_backend; }

rl::DType dtype_of(const Napi::Env& env, const std::string& name) {
  if (name == "F32") return rl::DType::F32;
  if (name == "F16") return rl::DType::F16;
  if (name == "BF16") return rl::DType::BF16;
  type_error(env, "dtype must be F32, F16 or BF16");
}

// A weight from raw little-endian bytes (Uint8Array) of the given dtype and shape.
rl::Weight weight_arg(const Napi::Value& bytes, const std::string& dtype, int rows, int cols, const char* where) {
  const Napi::Env env = bytes.Env();
  if (!bytes.IsTypedArray() || bytes.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) type_error(env, std::string(where) + " must be a Uint8Array");
  const Napi::Uint8Array a = bytes.As<Napi::Uint8Array>();
  const rl::DType t = dtype_of(env, dtype);
  if (a.ElementLength() != static_cast<size_t>(rows) * cols * rl::dtype_bytes(t)) type_error(env, std::string(where) + " has the wrong byte length for its dtype and shape");
  if (reinterpret_cast<uintptr_t>(a.Data()) % rl::dtype_bytes(t) != 0) type_error(env, std::string(where) + " is not aligned to its element size");
  return rl::Weight{t, a.Data(), rows, cols};
}

// matmul(x: Float32Array [n][cols], n, w: Uint8Array, dtype, rows, cols, bias: Float32Array [rows] | null) -> [n][rows]
Napi::Value OpMatmul(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int n = arg_int(info, 1, "n", 1), rows = arg_int(info, 4, "rows", 1), cols = arg_int(info, 5, "cols", 1);
  const Napi::Float32Array x = floats(info[0], "x", static_cast<size_t>(n) * cols);
  const rl::Weight w = weight_arg(info[2], str(info[3], "dtype"), rows, cols, "w");
  rl::Weight bias;
  const bool has_bias = !info[6].IsNull() && !info[6].IsUndefined();
  if (has_bias) bias = rl::Weight{rl::DType::F32, floats(info[6], "bias", rows).Data(), 1, rows};
  Napi::Float32Array y = Napi::Float32Array::New(env, static_cast<size_t>(n) * rows);
  ops_backend(env).matmul(x.Data(), n, w, has_bias ? &bias : nullptr, y.Data());
  return y;
}

// rmsnorm(x: Float32Array [n][dim], weight: Uint8Array, dtype, n, dim, eps) -> [n][dim]
Napi::Value OpRmsnorm(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int n = arg_int(info, 3, "n", 1), dim = arg_int(info, 4, "dim", 1);
  const Napi::Float32Array x = floats(info[0], "x", static_cast<size_t>(n) * dim);
  const rl::Weight w = weight_arg(info[1], str(info[2], "dtype"), 1, dim, "weight");
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(n) * dim);
  ops_backend(env).rmsnorm(x.Data(), w, n, static_cast<float>(number(info[5], "eps")), out.Data());
  return out;
}

// rope(x: Float32Array [n][heads][headDim], n, heads, headDim, pos0, invFreq [headDim/2]) -> rotated copy
Napi::Value OpRope(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int n = arg_int(info, 1, "n", 1), heads = arg_int(info, 2, "heads", 1), hd = arg_int(info, 3, "headDim", 2), pos0 = arg_int(info, 4, "pos0");
  if (hd % 2) type_error(env, "headDim must be even");
  const Napi::Float32Array x = floats(info[0], "x", static_cast<size_t>(n) * heads * hd);
  const Napi::Float32Array inv = floats(info[5], "invFreq", hd / 2);
  Napi::Float32Array out = Napi::Float32Array::New(env, x.ElementLength());
  std::memcpy(out.Data(), x.Data(), x.ElementLength() * sizeof(float));
  ops_backend(env).rope(out.Data(), n, heads, hd, pos0, inv.Data());
  return out;
}

// ropeInvFreq(headDim, theta, scaling: {factor, lowFreqFactor, highFreqFactor, originalMaxPositions} | null) -> [headDim/2]
Napi::Value OpRopeInvFreq(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int hd = arg_int(info, 0, "headDim", 2);
  rl::RopeScaling scaling;
  if (info[2].IsObject()) {
    const Napi::Object s = info[2].As<Napi::Object>();
    scaling.llama3 = true;
    scaling.factor = static_cast<float>(number(field(s, "factor", "scaling"), "factor"));
    scaling.low_freq_factor = static_cast<float>(number(field(s, "lowFreqFactor", "scaling"), "lowFreqFactor"));
    scaling.high_freq_factor = static_cast<float>(number(field(s, "highFreqFactor", "scaling"), "highFreqFactor"));
    scaling.original_max_positions = static_cast<float>(number(field(s, "originalMaxPositions", "scaling"), "originalMaxPositions"));
  }
  const std::vector<float> inv = rl::rope_inv_freq(hd, number(info[1], "theta"), scaling);
  Napi::Float32Array out = Napi::Float32Array::New(env, inv.size());
  std::memcpy(out.Data(), inv.data(), inv.size() * sizeof(float));
  return out;
}

// swiglu(gate: Float32Array, up: Float32Array) -> silu(gate) * up
Napi::Value OpSwiglu(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) type_error(env, "gate must be a Float32Array");
  const size_t count = info[0].As<Napi::TypedArray>().ElementLength();
  const Napi::Float32Array gate = floats(info[0], "gate", count), up = floats(info[1], "up", count);
  Napi::Float32Array out = Napi::Float32Array::New(env, count);
  ops_backend(env).swiglu(gate.Data(), up.Data(), count, out.Data());
  return out;
}

// embed(table: Uint8Array, dtype, rows, cols, tokens: Int32Array) -> [n][cols]
Napi::Value OpEmbed(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int rows = arg_int(info, 2, "rows", 1), cols = arg_int(info, 3, "cols", 1);
  const rl::Weight table = weight_arg(info[0], str(info[1], "dtype"), rows, cols, "table");
  if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) type_error(env, "tokens must be an Int32Array");
  const Napi::Int32Array tokens = info[4].As<Napi::Int32Array>();
  for (size_t i = 0; i < tokens.ElementLength(); i++) {
    if (tokens[i] < 0 || tokens[i] >= rows) throw Napi::RangeError::New(env, "token id out of range");
  }
  Napi::Float32Array out = Napi::Float32Array::New(env, tokens.ElementLength() * cols);
  ops_backend(env).embed(table, tokens.Data(), static_cast<int>(tokens.ElementLength()), out.Data());
  return out;
}

// attention({q, keys, values, n, pos0, nHeads, nKvHeads, headDim, blockSize, skipBlocks}) -> [n][nHeads][headDim]
// keys/values: [pos0 + n][nKvHeads][headDim] written into a fresh one-layer paged cache (after
// `skipBlocks` blocks taken by another sequence, so the pages are not in order), q: [n][nHeads][headDim].
Napi::Value OpAttention(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (!info[0].IsObject()) type_error(env, "attention(args): args must be an object");
  const Napi::Object a = info[0].As<Napi::Object>();
  auto get_int = [&](const char* key, int min) { return integer(field(a, key, "args"), std::string("args.") + key, min); };
  const int n = get_int("n", 1), pos0 = get_int("pos0", 0), heads = get_int("nHeads", 1), kv_heads = get_int("nKvHeads", 1);
  const int hd = get_int("headDim", 1), bs = get_int("blockSize", 1), skip = get_int("skipBlocks", 0);
  if (heads % kv_heads || hd > rl::kMaxHeadDim || bs > rl::kMaxBlockSize) type_error(env, "args: bad head counts, headDim or blockSize");
  const int positions = pos0 + n;
  const size_t kv_stride = static_cast<size_t>(kv_heads) * hd;
  const Napi::Float32Array q = floats(field(a, "q", "args"), "args.q", static_cast<size_t>(n) * heads * hd);
  const Napi::Float32Array keys = floats(field(a, "keys", "args"), "args.keys", positions * kv_stride);
  const Napi::Float32Array values = floats(field(a, "values", "args"), "args.values", positions * kv_stride);
  const int blocks = (positions + bs - 1) / bs;
  rl::KvCache kv(rl::KvCacheShape{1, kv_heads, hd, bs, blocks + skip});
  const int other = kv.new_sequence();
  kv.reserve(other, skip * bs);
  const int seq = kv.new_sequence();
  kv.reserve(seq, positions);
  rl::Backend& b = ops_backend(env);
  b.kv_write(kv, seq, 0, 0, positions, keys.Data(), values.Data());
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(n) * heads * hd);
  b.attention(kv, seq, 0, pos0, n, heads, q.Data(), out.Data());
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->model_class = Napi::Persistent(ModelWrap::Define(env));
  data->ops_backend = std::make_unique<rl::CpuBackend>(0);
  env.SetInstanceData(data);
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("backends", Napi::Function::New(env, Backends, "backends"));
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("matmul", Napi::Function::New(env, OpMatmul, "matmul"));
  ops.Set("rmsnorm", Napi::Function::New(env, OpRmsnorm, "rmsnorm"));
  ops.Set("rope", Napi::Function::New(env, OpRope, "rope"));
  ops.Set("ropeInvFreq", Napi::Function::New(env, OpRopeInvFreq, "ropeInvFreq"));
  ops.Set("swiglu", Napi::Function::New(env, OpSwiglu, "swiglu"));
  ops.Set("embed", Napi::Function::New(env, OpEmbed, "embed"));
  ops.Set("attention", Napi::Function::New(env, OpAttention, "attention"));
  exports.Set("ops", ops);
  return exports;
}

}  // namespace

NODE_API_MODULE(repo_lens, Init)
