#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/dot.h"

namespace rl {
namespace {

constexpr long kMinParallelWork = 1 << 14;

}  // namespace

void cpu_attention(ThreadPool& pool, const KvCache& kv, int seq, int layer, int pos0, int n, int n_heads, const float* q, float* out) {
  const KvCacheShape& shape = kv.shape();
  const int hd = shape.head_dim, bs = shape.block_size, group = n_heads / shape.n_kv_heads;
  const std::vector<int>& blocks = kv.blocks(seq);
  // transformers: scores * head_dim ** -0.5, the Python float applied in float32.
  const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));

  auto one_head = [&](int task, int /*worker*/) {
    const int t = task / n_heads, h = task % n_heads, kv_head = h / group;
    const int last = pos0 + t;  // inclusive
    const float* qh = q + static_cast<size_t>(task) * hd;
    float acc[kMaxHeadDim];  // [head_dim] running sum of p * v
    float scores[kMaxBlockSize];
    std::fill(acc, acc + hd, 0.0f);
    float running_max = -std::numeric_limits<float>::infinity(), running_sum = 0.0f;
    for (int lb = 0; lb * bs <= last; lb++) {
      const int count = std::min(bs, last - lb * bs + 1);
      const float* k = kv.keys(layer, blocks[lb], kv_head);    // [block_size][head_dim]
      const float* v = kv.values(layer, blocks[lb], kv_head);  // [block_size][head_dim]
      float block_max = -std::numeric_limits<float>::infinity();
      for (int j = 0; j < count; j++) {
        scores[j] = dot_f32(qh, k + j * hd, hd) * scale;
        block_max = std::max(block_max, scores[j]);
      }
      const float new_max = std::max(running_max, block_max);
      const float rescale = std::exp(running_max - new_max);  // 0 on the first block
      running_sum *= rescale;
      for (int d = 0; d < hd; d++) acc[d] *= rescale;
      for (int j = 0; j < count; j++) {
        const float p = std::exp(scores[j] - new_max);
        running_sum += p;
        const float* vj = v + j * hd;
        for (int d = 0; d < hd; d++) acc[d] += p * vj[d];
      }
      running_max = new_max;
    }
    float* oh = out + static_cast<size_t>(task) * hd;
    for (int d = 0; d < hd; d++) oh[d] = acc[d] / running_sum;
  };

  const int tasks = n * n_heads;
  const long work = static_cast<long>(tasks) * (pos0 + n) * hd;
  if (work < kMinParallelWork) {
    for (int task = 0; task < tasks; task++) one_head(task, 0);
  } else {
    pool.parallel_for(tasks, one_head);
  }
}

}  // namespace rl
