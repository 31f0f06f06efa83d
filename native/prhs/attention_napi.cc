#include "prhs/attention_napi.h"

#include <cmath>
#include <memory>
#include <string>

namespace rl::prhs {
namespace {

[[noreturn]] void bad(const Napi::Env& env, const std::string& what) { throw Napi::TypeError::New(env, "attention." + what); }

Napi::Value field(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) bad(o.Env(), std::string(key) + " is missing");
  return o.Get(key);
}
double number(const Napi::Object& o, const char* key, double lo, double hi) {
  const Napi::Value v = field(o, key);
  if (!v.IsNumber()) bad(o.Env(), std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < lo || d > hi) bad(o.Env(), std::string(key) + " must lie in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return d;
}
int integer(const Napi::Object& o, const char* key, int lo) {
  const double d = number(o, key, lo, 2147483647.0);
  if (d != std::floor(d)) bad(o.Env(), std::string(key) + " must be an integer");
  return static_cast<int>(d);
}
bool boolean(const Napi::Object& o, const char* key) {
  const Napi::Value v = field(o, key);
  if (!v.IsBoolean()) bad(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}
std::string text(const Napi::Object& o, const char* key) {
  const Napi::Value v = field(o, key);
  if (!v.IsString()) bad(o.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Mode mode_of(const Napi::Env& env, const std::string& s) {
  if (s == "dense") return Mode::Dense;
  if (s == "prhs") return Mode::Prhs;
  if (s == "quest") return Mode::Quest;
  if (s == "oracle") return Mode::Oracle;
  if (s == "streaming") return Mode::Streaming;
  bad(env, "mode must be dense, prhs, quest, oracle or streaming, found \"" + s + "\"");
}
KeyBound bound_of(const Napi::Env& env, const std::string& s) {
  if (s == "minmax") return KeyBound::MinMax;
  if (s == "int8") return KeyBound::Int8;
  if (s == "int4") return KeyBound::Int4;
  bad(env, "keyBound must be minmax, int8 or int4, found \"" + s + "\"");
}

Params read_params(const Napi::Object& o) {
  Params p;
  p.mode = mode_of(o.Env(), text(o, "mode"));
  p.budget = number(o, "budget", 0, 1);
  p.budget_tokens = integer(o, "budgetTokens", 0);
  if (p.budget <= 0 && p.budget_tokens == 0) bad(o.Env(), "budget must be > 0");
  p.sinks = integer(o, "sinks", 0);
  p.window = integer(o, "window", 0);
  p.tau = number(o, "tau", -1, 1);
  p.max_reuse = integer(o, "maxReuse", 0);
  p.dilation = integer(o, "dilation", 0);
  p.dilate_top = integer(o, "dilateTop", 0);
  p.layer_group = integer(o, "layerGroup", 1);
  p.depth_schedule = boolean(o, "depthSchedule");
  p.depth_start_layer = integer(o, "depthStartLayer", -1);
  p.depth_phi = number(o, "depthPhi", 0, 1);
  p.depth_alpha = number(o, "depthAlpha", 0, 1e6);
  p.delta_target = number(o, "deltaTarget", 0, 1);
  p.certify_every = integer(o, "certifyEvery", 0);
  p.strict = boolean(o, "strict");
  p.audit = boolean(o, "audit");
  p.key_bound = bound_of(o.Env(), text(o, "keyBound"));
  return p;
}

}  // namespace

void set_attention(Model& model, const Napi::Value& settings) {
  const Napi::Env env = settings.Env();
  if (settings.IsNull() || settings.IsUndefined()) {
    model.set_decode_attention(nullptr);
    return;
  }
  if (!settings.IsObject()) throw Napi::TypeError::New(env, "setAttention(settings): settings must be an object or null");
  const Params p = read_params(settings.As<Napi::Object>());
  const ModelArch& a = model.arch();
  try {
    model.set_decode_attention(std::make_unique<DecodeAttention>(p, a.num_layers, a.num_heads, a.num_kv_heads, a.head_dim));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value attention_step(const Model& model, const Napi::Env& env) {
  const DecodeAttention* att = model.decode_attention();
  if (!att || att->step() < 0) return env.Null();
  const ModelArch& a = model.arch();
  Napi::Object out = Napi::Object::New(env);
  out.Set("step", att->step());
  Napi::Array layers = Napi::Array::New(env, a.num_layers);
  for (int l = 0; l < a.num_layers; l++) {
    Napi::Array heads = Napi::Array::New(env, a.num_kv_heads);
    for (int h = 0; h < a.num_kv_heads; h++) {
      const HeadRecord& r = att->records()[static_cast<size_t>(l) * a.num_kv_heads + h];
      Napi::Object o = Napi::Object::New(env);
      Napi::Int32Array blocks = Napi::Int32Array::New(env, r.blocks.size());
      for (size_t i = 0; i < r.blocks.size(); i++) blocks[i] = r.blocks[i];
      o.Set("blocks", blocks);
      o.Set("source", source_name(r.source));
      o.Set("deltaHat", r.delta_hat < 0 ? env.Null() : Napi::Number::New(env, r.delta_hat));
      o.Set("delta", r.delta < 0 ? env.Null() : Napi::Number::New(env, r.delta));
      o.Set("expanded", r.expanded);
      o.Set("entriesRead", static_cast<double>(r.entries_read));
      heads.Set(h, o);
    }
    layers.Set(l, heads);
  }
  out.Set("layers", layers);
  return out;
}

Napi::Value attention_counters(const Model& model, const Napi::Env& env) {
  const DecodeAttention* att = model.decode_attention();
  if (!att) return env.Null();
  const Counters& c = att->counters();
  Napi::Object o = Napi::Object::New(env);
  o.Set("steps", static_cast<double>(c.steps));
  o.Set("selections", static_cast<double>(c.selections));
  o.Set("scoringPasses", static_cast<double>(c.scoring_passes));
  o.Set("certifyPasses", static_cast<double>(c.certify_passes));
  o.Set("certified", static_cast<double>(c.certified));
  o.Set("expanded", static_cast<double>(c.expanded));
  o.Set("entriesRead", static_cast<double>(c.entries_read));
  o.Set("entriesContext", static_cast<double>(c.entries_context));
  o.Set("summaryBytes", static_cast<double>(c.summary_bytes));
  return o;
}

}  // namespace rl::prhs
