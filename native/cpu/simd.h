// Whether this CPU has AVX2, FMA and F16C (checked once). The kernels in dot.cc and convert.cc
// have a path compiled for them (GCC target attributes) beside the portable one, so the addon
// is built for baseline x86-64 and still uses the wide instructions where they exist.
#pragma once

namespace rl {

bool cpu_has_avx2_fma_f16c();

}  // namespace rl
