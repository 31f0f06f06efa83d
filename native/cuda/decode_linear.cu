#include "decode_linear.cuh"

#include <stdexcept>
#include <string>

#include "device_util.cuh"

namespace rl::cuda {
namespace {

constexpr int kWarps = 8;  // warps per CTA
constexpr int kThreads = kWarps * 32;

// Eight consecutive elements of W as loaded: 16 bytes for the 16-bit types, 32 for float32.
template <typename T>
struct Chunk {
  uint4 v[sizeof(T) / 2];
};

// 16 bytes of W that bypass L1 (read once; x keeps L1), or through it as __ldg does.
template <bool kNoL1>
__device__ __forceinline__ uint4 load_w16(const uint4* p) {
  if constexpr (kNoL1) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
  } else {
    return __ldg(p);
  }
}

template <typename T, bool kNoL1>
__device__ __forceinline__ void load_chunk(const T* p, Chunk<T>& c) {
#pragma unroll
  for (int i = 0; i < int(sizeof(T) / 2); ++i) c.v[i] = load_w16<kNoL1>(reinterpret_cast<const uint4*>(p) + i);
}

template <typename T>
__device__ __forceinline__ void unpack_chunk(const Chunk<T>& c, float (&f)[8]);
template <>
__device__ __forceinline__ void unpack_chunk<float>(const Chunk<float>& c, float (&f)[8]) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    f[4 * i] = __uint_as_float(c.v[i].x), f[4 * i + 1] = __uint_as_float(c.v[i].y);
    f[4 * i + 2] = __uint_as_float(c.v[i].z), f[4 * i + 3] = __uint_as_float(c.v[i].w);
  }
}
template <>
__device__ __forceinline__ void unpack_chunk<__half>(const Chunk<__half>& c, float (&f)[8]) {
  const __half2* h = reinterpret_cast<const __half2*>(&c.v[0]);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __half22float2(h[i]);
    f[2 * i] = x.x, f[2 * i + 1] = x.y;
  }
}
template <>
__device__ __forceinline__ void unpack_chunk<__nv_bfloat16>(const Chunk<__nv_bfloat16>& c, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&c.v[0]);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __bfloat1622float2(h[i]);
    f[2 * i] = x.x, f[2 * i + 1] = x.y;
  }
}

// Grid: x over groups of kWarps / split rows (rows of all parts, in part order; Swiglu: rows of
// gate = rows of up), y over groups of kTok tokens. Warp w of a CTA takes row w / split, column
// segment w % split.
template <typename T, int kMode, int kTok, int kUnroll, bool kNoL1, bool kSmemX = false>
__global__ void __launch_bounds__(kThreads) decode_linear_kernel(const DecodeLinearArgs a) {
  extern __shared__ float4 xs4[];  // kSmemX: x' [kTok][cols] (normalized) staged once per CTA
  float* xs = reinterpret_cast<float*>(xs4);
  constexpr int kW = kMode == int(DecodeLinearMode::Swiglu) ? 2 : 1;  // rows of W one warp reads
  __shared__ float partial[kWarps][kW][kTok];
  __shared__ float warp_ss[kWarps][kTok];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int split = a.split;
  const int row = blockIdx.x * (kWarps / split) + warp / split, seg = warp % split;
  int total = a.part[0].rows;
  if (kMode == int(DecodeLinearMode::Store)) {
    for (int p = 1; p < a.parts; ++p) total += a.part[p].rows;
  }
  const bool active = row < total;
  int p = 0, local = row;
  if (kMode == int(DecodeLinearMode::Store)) {
    while (p + 1 < a.parts && local >= a.part[p].rows) local -= a.part[p].rows, ++p;
  }
  const int cols = a.cols, chunks = cols / 8;
  const int c_end = ((seg + 1) * chunks / split) * 8;
  const T* wr[kW];
  wr[0] = static_cast<const T*>(a.part[p].w) + size_t(active ? local : 0) * cols;
  if (kW == 2) wr[kW - 1] = static_cast<const T*>(a.part[1].w) + size_t(active ? local : 0) * cols;

  // The first chunks of W before waiting for the previous kernel: weights never depend on it.
  Chunk<T> raw[kW][kUnroll];
  int c0 = (seg * chunks / split) * 8 + lane * 8;
  auto load = [&](int from) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = from + u * 32 * 8;
      if (active && c < c_end) {
#pragma unroll
        for (int r = 0; r < kW; ++r) load_chunk<T, kNoL1>(wr[r] + c, raw[r][u]);
      }
    }
  };
  load(c0);
  if (a.early_launch) grid_dependency_release();
  grid_dependency_wait();

  const int t0 = blockIdx.y * kTok, tokens = min(a.n - t0, kTok);
  const float* xt = a.x + size_t(t0) * cols;
  // rmsnorm's 1 / sqrt(mean(x^2) + eps) per token, summed in the order rmsnorm.cu sums (256 threads).
  float inv[kTok];
  const bool norm = a.norm != nullptr;
  if (norm) {
#pragma unroll
    for (int t = 0; t < kTok; ++t) {
      float ss = 0.f;
      if (t < tokens) {
        for (int i = threadIdx.x; i < cols; i += kThreads) ss += xt[size_t(t) * cols + i] * xt[size_t(t) * cols + i];
      }
      ss = warp_sum(ss);
      if (lane == 0) warp_ss[warp][t] = ss;
    }
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kTok; ++t) {
      float total_ss = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) total_ss += warp_ss[w][t];
      inv[t] = rsqrtf(total_ss / cols + a.eps);
    }
  }

  if (kSmemX) {
    for (int i = threadIdx.x; i < tokens * cols; i += kThreads) {
      const int c = i % cols;
      xs[i] = norm ? xt[i] * inv[i / cols] * a.norm[c] : xt[i];
    }
    __syncthreads();
  }

  float acc[kW][kTok] = {};
  for (; active && c0 < c_end; c0 += 32 * 8 * kUnroll) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = c0 + u * 32 * 8;
      if (c >= c_end) break;
      float wf[kW][8];
#pragma unroll
      for (int r = 0; r < kW; ++r) unpack_chunk<T>(raw[r][u], wf[r]);
      float nw[8];
      if (norm && !kSmemX) load8(a.norm + c, nw);
#pragma unroll
      for (int t = 0; t < kTok; ++t) {
        if (t < tokens) {
          float xf[8];
          if (kSmemX) {
            const float4 lo = xs4[(t * cols + c) / 4], hi = xs4[(t * cols + c) / 4 + 1];
            xf[0] = lo.x, xf[1] = lo.y, xf[2] = lo.z, xf[3] = lo.w, xf[4] = hi.x, xf[5] = hi.y, xf[6] = hi.z, xf[7] = hi.w;
          } else {
            load8(xt + size_t(t) * cols + c, xf);
          }
          if (norm && !kSmemX) {
#pragma unroll
            for (int j = 0; j < 8; ++j) xf[j] = xf[j] * inv[t] * nw[j];
          }
#pragma unroll
          for (int r = 0; r < kW; ++r) {
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[r][t] += wf[r][j] * xf[j];
          }
        }
      }
    }
    if (c0 + 32 * 8 * kUnroll < c_end) load(c0 + 32 * 8 * kUnroll);
  }
#pragma unroll
  for (int r = 0; r < kW; ++r) {
#pragma unroll
    for (int t = 0; t < kTok; ++t) acc[r][t] = warp_sum(acc[r][t]);
  }
  if (split > 1) {  // the segments' sums, in segment order
    if (lane == 0) {
#pragma unroll
      for (int r = 0; r < kW; ++r) {
#pragma unroll
        for (int t = 0; t < kTok; ++t) partial[warp][r][t] = acc[r][t];
      }
    }
    __syncthreads();
    if (seg == 0) {
#pragma unroll
      for (int r = 0; r < kW; ++r) {
#pragma unroll
        for (int t = 0; t < kTok; ++t) {
          float s = partial[warp][r][t];
          for (int k = 1; k < split; ++k) s += partial[warp + k][r][t];
          acc[r][t] = s;
        }
      }
    }
  }
  if (!active || seg != 0 || lane != 0) return;
  const DecodeLinearPart& out = a.part[p];
#pragma unroll
  for (int t = 0; t < kTok; ++t) {
    if (t >= tokens) break;
    float* y = out.y + size_t(t0 + t) * out.rows + local;
    if (kMode == int(DecodeLinearMode::Store)) {
      *y = acc[0][t] + (out.bias ? out.bias[local] : 0.f);
    } else if (kMode == int(DecodeLinearMode::Add)) {
      const float r = a.residual ? a.residual[size_t(t0 + t) * out.rows + local] : *y;
      *y = r + (acc[0][t] + (out.bias ? out.bias[local] : 0.f));
    } else {
      const float g = acc[0][t];
      *y = g / (1.f + expf(-g)) * acc[kW - 1][t];
    }
  }
}

int total_rows(const DecodeLinearArgs& a) {
  if (a.mode != DecodeLinearMode::Store) return a.part[0].rows;
  int total = 0;
  for (int p = 0; p < a.parts; ++p) total += a.part[p].rows;
  return total;
}

constexpr int kUnrollDefault = 4;  // chunks of W a lane loads at once (decode_linear's kernels)

// Warps per row: doubled while the rows would still give at most 4096 warps and each segment keeps
// at least 64 chunks of 8 columns (two per lane). (At 8192 warps down_proj of the 1.5B shape took
// split 8, slower than 2: bench/gpu/NOTES.md, session 11.) Swiglu, whose warps read a row of gate
// and one of up, doubles it further while a lane's chunks of a row would need more than one round
// of loads: gate and up of the 1.5B shape (8960 rows of 1536 columns) at split 2 instead of 1 took
// ~2 % off a dense decode step at 32K, ~4 % at 1K on the H100 (bench/gpu/NOTES.md, session 21),
// though a Store product of that shape alone is no faster.
int choose_split(int rows, int cols, DecodeLinearMode mode) {
  const int chunks = cols / 8;
  int split = 1;
  while (split < kWarps && rows * split * 2 <= 4096 && chunks / (split * 2) >= 64) split *= 2;
  if (mode == DecodeLinearMode::Swiglu) {
    while (split < kWarps && chunks > split * 32 * kUnrollDefault && chunks / (split * 2) >= 64) split *= 2;
  }
  return split;
}

template <typename T, int kMode, int kUnroll, bool kNoL1>
void launch_tok(const DecodeLinearArgs& a, cudaStream_t s) {
  const int rows = total_rows(a);
  const int per_cta = kWarps / a.split;
  if (a.n == 1) {
    launch_chained("decode_linear_kernel", decode_linear_kernel<T, kMode, 1, kUnroll, kNoL1>,
                   dim3((rows + per_cta - 1) / per_cta, 1), dim3(kThreads), 0, s, a);
  } else {
    launch_chained("decode_linear_kernel", decode_linear_kernel<T, kMode, 4, kUnroll, kNoL1>,
                   dim3((rows + per_cta - 1) / per_cta, (a.n + 3) / 4), dim3(kThreads), 0, s, a);
  }
}

template <typename T, int kUnroll, bool kNoL1>
void launch_mode(const DecodeLinearArgs& a, cudaStream_t s) {
  switch (a.mode) {
    case DecodeLinearMode::Store: return launch_tok<T, int(DecodeLinearMode::Store), kUnroll, kNoL1>(a, s);
    case DecodeLinearMode::Add: return launch_tok<T, int(DecodeLinearMode::Add), kUnroll, kNoL1>(a, s);
    case DecodeLinearMode::Swiglu: return launch_tok<T, int(DecodeLinearMode::Swiglu), kUnroll, kNoL1>(a, s);
  }
  throw std::runtime_error("decode_linear: unknown mode");
}

DecodeLinearArgs checked(DecodeLinearArgs a) {
  if (a.n <= 0 || a.cols <= 0) throw std::runtime_error("decode_linear: empty shape");
  if (a.cols % 8 != 0) throw std::runtime_error("decode_linear: cols must be a multiple of 8");
  if (a.n > kDecodeLinearMaxTokens) throw std::runtime_error("decode_linear: at most " + std::to_string(kDecodeLinearMaxTokens) + " tokens");
  const int want = a.mode == DecodeLinearMode::Swiglu ? 2 : a.mode == DecodeLinearMode::Add ? 1 : 0;
  if ((want && a.parts != want) || a.parts < 1 || a.parts > 3) throw std::runtime_error("decode_linear: wrong number of weights for the mode");
  for (int p = 0; p < a.parts; ++p) {
    if (a.part[p].rows <= 0 || !a.part[p].w) throw std::runtime_error("decode_linear: empty weight");
  }
  if (a.residual && a.mode != DecodeLinearMode::Add) throw std::runtime_error("decode_linear: a residual is for the add mode");
  if (a.mode == DecodeLinearMode::Swiglu && a.part[1].rows != a.part[0].rows) throw std::runtime_error("decode_linear: gate and up differ in rows");
  if (a.split == 0) a.split = choose_split(total_rows(a), a.cols, a.mode);
  if (a.split != 1 && a.split != 2 && a.split != 4 && a.split != 8) throw std::runtime_error("decode_linear: split must be 1, 2, 4 or 8");
  return a;
}

}  // namespace

void decode_linear(const DecodeLinearArgs& args, cudaStream_t stream) {
  const DecodeLinearArgs a = checked(args);
  switch (a.type) {
    case WeightType::F32: return launch_mode<float, kUnrollDefault, true>(a, stream);
    case WeightType::F16: return launch_mode<__half, kUnrollDefault, true>(a, stream);
    case WeightType::BF16: return launch_mode<__nv_bfloat16, kUnrollDefault, true>(a, stream);
  }
  throw std::runtime_error("decode_linear: unknown weight type");
}

void decode_linear_variant(const DecodeLinearArgs& args, int variant, cudaStream_t stream) {
  DecodeLinearArgs a = checked(args);
  if (variant & 16) a.early_launch = true;
  variant &= ~16;
  if (variant == 0) return decode_linear(a, stream);
  if (a.type != WeightType::BF16) throw std::runtime_error("decode_linear_variant: BF16 weights only");
  if (variant == 1) return launch_mode<__nv_bfloat16, kUnrollDefault, false>(a, stream);
  if (variant == 2) return launch_mode<__nv_bfloat16, 8, true>(a, stream);
  if (variant == 3) {  // x' staged in shared memory (one token, up to 12K columns)
    if (a.n != 1 || a.cols > 12288) throw std::runtime_error("decode_linear_variant 3: one token, at most 12288 columns");
    const int rows = total_rows(a), per_cta = kWarps / a.split;
    const dim3 grid((rows + per_cta - 1) / per_cta, 1);
    const size_t smem = size_t(a.cols) * sizeof(float);
    switch (a.mode) {
      case DecodeLinearMode::Store:
        return launch_chained("decode_linear_kernel", decode_linear_kernel<__nv_bfloat16, 0, 1, kUnrollDefault, true, true>, grid, dim3(kThreads), smem, stream, a);
      case DecodeLinearMode::Add:
        return launch_chained("decode_linear_kernel", decode_linear_kernel<__nv_bfloat16, 1, 1, kUnrollDefault, true, true>, grid, dim3(kThreads), smem, stream, a);
      case DecodeLinearMode::Swiglu:
        return launch_chained("decode_linear_kernel", decode_linear_kernel<__nv_bfloat16, 2, 1, kUnrollDefault, true, true>, grid, dim3(kThreads), smem, stream, a);
    }
  }
  throw std::runtime_error("decode_linear_variant: unknown variant");
}

}  // namespace rl::cuda
