// How the prefill kernels (gemm.cuh, prefill_attention.cuh) feed the 16-bit tensor cores.
#pragma once

namespace rl::cuda {

enum class PrefillPrecision {
  // Each float32 operand split into 16-bit hi + lo halves and the products of both summed (two in
  // the GEMM, three in attention): float32-level results, within ~1e-5 of the CPU reference.
  Float32,
  // Each operand rounded once to 16 bits (W's type in the GEMM, fp16 in attention) and one product,
  // as transformers' bf16 prefill does: 2-3x fewer tensor-core products, errors ~1e-3 relative.
  Half,
};

}  // namespace rl::cuda
