// y[n][w.rows] = x[n][w.cols] . w^T (+ bias): the linear layers and the LM head.
#pragma once
#include <vector>

#include "backend.h"
#include "cpu/thread_pool.h"

namespace rl {

// Threaded over output rows. F16/BF16 rows are converted once into `scratch` (grown here, one
// slot of w.cols floats per pool thread) and then used for all n tokens.
void cpu_matmul(ThreadPool& pool, std::vector<float>& scratch, const float* x, int n, const Weight& w, const Weight* bias, float* y);

}  // namespace rl
