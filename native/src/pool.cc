// Max pooling and its gradient on NHWC, with the cpu backend's tie rule: the first window element (row-major)
// holding the maximum wins, so gradients land on the same pixel as TensorFlow.js's own kernel.
#include <limits>
#include <vector>

#include "args.h"


namespace {

// Geometry from tfjs's computePool2DInfo; the order is part of the ABI with common/tf/native-pool-kernels.ts.
struct PoolGeometry {
  int64_t n, h, w, c, kh, kw, oh, ow, sh, sw, pt, pl;
  static constexpr size_t kLength = 12;
  explicit PoolGeometry(const int32_t* g)
      : n(g[0]), h(g[1]), w(g[2]), c(g[3]), kh(g[4]), kw(g[5]), oh(g[6]), ow(g[7]), sh(g[8]), sw(g[9]), pt(g[10]),
        pl(g[11]) {}
};

void checkSizes(const PoolGeometry& g, size_t xLen, size_t yLen) {
  if (static_cast<int64_t>(xLen) != g.n * g.h * g.w * g.c || static_cast<int64_t>(yLen) != g.n * g.oh * g.ow * g.c) {
    throw ArgError("array sizes do not match the pooling geometry");
  }
}

}  // namespace

// maxPool(x, y, geometry)
NAPI_EXPORT(maxPool) {
  size_t xLen, yLen;
  const float* x = args.f32(0, &xLen);
  float* y = args.f32(1, &yLen);
  PoolGeometry g(args.i32s(2, PoolGeometry::kLength));
  checkSizes(g, xLen, yLen);
  const int64_t rows = g.n * g.oh;
#pragma omp parallel for if (static_cast<int64_t>(yLen) > kParallelThreshold) schedule(static)
  for (int64_t row = 0; row < rows; row++) {
    const int64_t b = row / g.oh, oy = row % g.oh;
    for (int64_t ox = 0; ox < g.ow; ox++) {
      float* out = y + ((row * g.ow) + ox) * g.c;
      for (int64_t ch = 0; ch < g.c; ch++) out[ch] = -std::numeric_limits<float>::infinity();
      for (int64_t ky = 0; ky < g.kh; ky++) {
        const int64_t iy = oy * g.sh - g.pt + ky;
        if (iy < 0 || iy >= g.h) continue;
        for (int64_t kx = 0; kx < g.kw; kx++) {
          const int64_t ix = ox * g.sw - g.pl + kx;
          if (ix < 0 || ix >= g.w) continue;
          const float* in = x + ((b * g.h + iy) * g.w + ix) * g.c;
          for (int64_t ch = 0; ch < g.c; ch++) out[ch] = in[ch] > out[ch] ? in[ch] : out[ch];
        }
      }
    }
  }
  return args.undefined();
}

// One image's max-pool gradient. Per window the running maximum and its position are kept per channel
// with branch-free selects, which the compiler vectorises across channels.
FEDSIM_MULTIVERSION void maxPoolGradImage(const PoolGeometry& g, const float* __restrict dy,
                                          const float* __restrict x, float* __restrict dx, float* __restrict best,
                                          int32_t* __restrict where) {
  // Windows that tile the image exactly (2x2 stride 2 on an even size, as in the CNN) cover every pixel
  // once: each window writes its own dx pixels, with no zeroing pass and no scattered adds.
  const bool tiles = g.kh == g.sh && g.kw == g.sw && g.pt == 0 && g.pl == 0 && g.oh * g.sh == g.h &&
                     g.ow * g.sw == g.w;
  const int64_t imageSize = g.h * g.w * g.c;
  if (!tiles) {
    for (int64_t i = 0; i < imageSize; i++) dx[i] = 0.0f;
  }
  for (int64_t oy = 0; oy < g.oh; oy++) {
    for (int64_t ox = 0; ox < g.ow; ox++) {
      for (int64_t ch = 0; ch < g.c; ch++) {
        best[ch] = -std::numeric_limits<float>::infinity();
        where[ch] = -1;
      }
      for (int64_t ky = 0; ky < g.kh; ky++) {
        const int64_t iy = oy * g.sh - g.pt + ky;
        if (iy < 0 || iy >= g.h) continue;
        for (int64_t kx = 0; kx < g.kw; kx++) {
          const int64_t ix = ox * g.sw - g.pl + kx;
          if (ix < 0 || ix >= g.w) continue;
          const int32_t base = static_cast<int32_t>((iy * g.w + ix) * g.c);
          const float* in = x + base;
          for (int32_t ch = 0; ch < static_cast<int32_t>(g.c); ch++) {
            const bool greater = in[ch] > best[ch];
            best[ch] = greater ? in[ch] : best[ch];
            where[ch] = greater ? base + ch : where[ch];
          }
        }
      }
      const float* grad = dy + (oy * g.ow + ox) * g.c;
      if (!tiles) {
        for (int64_t ch = 0; ch < g.c; ch++) {
          if (where[ch] >= 0) dx[where[ch]] += grad[ch];
        }
        continue;
      }
      for (int64_t ky = 0; ky < g.kh; ky++) {
        for (int64_t kx = 0; kx < g.kw; kx++) {
          const int32_t base = static_cast<int32_t>(((oy * g.sh + ky) * g.w + ox * g.sw + kx) * g.c);
          float* out = dx + base;
          for (int32_t ch = 0; ch < static_cast<int32_t>(g.c); ch++) out[ch] = where[ch] == base + ch ? grad[ch] : 0.0f;
        }
      }
    }
  }
}

// maxPoolGrad(dy, x, dx, geometry): routes each dy element to its window's (first) maximum in x.
NAPI_EXPORT(maxPoolGrad) {
  size_t dyLen, xLen, dxLen;
  const float* dy = args.f32(0, &dyLen);
  const float* x = args.f32(1, &xLen);
  float* dx = args.f32(2, &dxLen);
  PoolGeometry g(args.i32s(3, PoolGeometry::kLength));
  checkSizes(g, xLen, dyLen);
  if (dxLen != xLen) throw ArgError("dx must have x's size");
  if (g.h * g.w * g.c >= (int64_t{1} << 31)) throw ArgError("an image of 2^31 or more values is not supported");
  const int64_t imageSize = g.h * g.w * g.c;
  const int64_t outImageSize = g.oh * g.ow * g.c;
  // One image per iteration: windows of different images never write to the same dx element.
#pragma omp parallel if (static_cast<int64_t>(xLen) > kParallelThreshold)
  {
    std::vector<float> best(g.c);
    std::vector<int32_t> where(g.c);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < g.n; b++) {
      maxPoolGradImage(g, dy + b * outImageSize, x + b * imageSize, dx + b * imageSize, best.data(), where.data());
    }
  }
  return args.undefined();
}
