#include "cpu/matmul.h"

#include <algorithm>

#include "cpu/convert.h"
#include "cpu/dot.h"

namespace rl {
namespace {

// Below this many multiply-adds a matmul runs on the calling thread: waking workers costs more.
constexpr long kMinParallelWork = 1 << 15;
constexpr int kRowsPerTask = 16;

}  // namespace

void cpu_matmul(ThreadPool& pool, std::vector<float>& scratch, const float* x, int n, const Weight& w, const Weight* bias, float* y) {
  const int rows = w.rows, cols = w.cols;
  const bool convert = w.dtype != DType::F32;
  if (convert && scratch.size() < static_cast<size_t>(pool.size()) * cols) scratch.resize(static_cast<size_t>(pool.size()) * cols);

  auto row_block = [&](int task, int worker) {
    const int r0 = task * kRowsPerTask, r1 = std::min(rows, r0 + kRowsPerTask);
    float* row_f32 = convert ? scratch.data() + static_cast<size_t>(worker) * cols : nullptr;
    for (int r = r0; r < r1; r++) {
      const float* row;
      if (convert) {
        to_f32(w.dtype, w.data, static_cast<size_t>(r) * cols, cols, row_f32);
        row = row_f32;
      } else {
        row = static_cast<const float*>(w.data) + static_cast<size_t>(r) * cols;
      }
      const float b = bias ? load_f32(bias->dtype, bias->data, r) : 0.0f;
      int t = 0;
      for (; t + 4 <= n; t += 4) {  // four tokens per pass over the row
        float out[4];
        dot4_f32(row, x + static_cast<size_t>(t) * cols, cols, cols, out);
        for (int j = 0; j < 4; j++) y[static_cast<size_t>(t + j) * rows + r] = out[j] + b;
      }
      for (; t < n; t++) y[static_cast<size_t>(t) * rows + r] = dot_f32(row, x + static_cast<size_t>(t) * cols, cols) + b;
    }
  };
  const int tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  if (static_cast<long>(rows) * cols * n < kMinParallelWork) {
    for (int t = 0; t < tasks; t++) row_block(t, 0);
  } else {
    pool.parallel_for(tasks, row_block);
  }
}

}  // namespace rl
