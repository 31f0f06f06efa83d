// The N-API face of sparse decode attention, called from ModelWrap in addon.cc:
//   model.setAttention(settings | null)  installs a fresh policy for the next generation (or dense)
//   model.attentionStep()                the latest decode step's selection, per layer and KV head
//   model.attentionCounters()            totals since setAttention
// settings is src/trace/attention.ts's AttentionSettings with every field present.
#pragma once
#include <napi.h>

#include "model/model.h"

namespace rl::prhs {

void set_attention(Model& model, const Napi::Value& settings);
Napi::Value attention_step(const Model& model, const Napi::Env& env);
Napi::Value attention_counters(const Model& model, const Napi::Env& env);

}  // namespace rl::prhs
