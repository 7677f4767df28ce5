// Whole-update vector passes (aggregation, validation, the client's delta): memory-bound loops over
// ~1.7M-float model updates, where V8 spends 3-6 ns per element and these loops well under 1.
//
// Each pass gives exactly what its JavaScript fallback in common/vector-passes.ts gives (NaN payloads
// aside): the same float64 operations in the same order per element, rounded to float32 where the JS
// stores into a Float32Array. That rules out fused multiply-adds (one rounding instead of two), hence
// fp-contract=off for this file. The AVX2 clones could not contract anyway (AVX2 does not imply FMA), but
// a future "avx2,fma" or -march=native must not silently change results.
#pragma GCC optimize("fp-contract=off")

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "args.h"

namespace {

// Elements per weightedMean block: the float64 accumulators of one block (64 KB) stay in L1/L2 while each
// input's slice streams past in runs long enough for the hardware prefetchers, and the block order matches
// the JS fallback's, so even an `out` overlapping an input gives the same result.
constexpr int64_t kMeanBlock = 8192;
// Inputs below this many elements run on one thread: 8x kParallelThreshold, because one AVX2 thread already
// does a 1.7M-float pass in 0.3-1 ms, less than what a fork-join costs when the cores are busy. Measured on
// the 2-core machine of MEASURED.md under load 2-2.5: the single-vector passes on 1,663,370 floats took
// 0.3-0.8 ms on 1 thread and 2-5 ms (median) on 2; weightedMean of 10 such vectors 9 ms on 1 thread and
// 4.5-12 ms on 2. So only work of several milliseconds (a mean of many updates, a much larger model) forks.
constexpr int64_t kPassParallelThreshold = 8 * kParallelThreshold;
// Elements per firstNonFinite block: scanned branch-free, then re-scanned element by element if flagged.
constexpr int64_t kScanBlock = 4096;

typedef uint32_t __attribute__((may_alias)) FloatBits;

// True when [a, a + n) and [b, b + n) share memory without being the same array: then the loops must run in
// order, on one thread, as the JS does (the vectoriser's own alias checks keep a single thread correct).
bool partiallyOverlap(const float* a, const float* b, int64_t n) {
  return a != b && a < b + n && b < a + n;
}

// The weighted mean's loops also get an AVX-512 clone: converting floats to doubles halves the SIMD width,
// so AVX-512 converts, multiplies and adds twice the elements per instruction that AVX2 does.
#define FEDSIM_MEAN_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))

FEDSIM_MEAN_MULTIVERSION void accumulate(double* acc, const float* v, double w, int64_t len) {
  for (int64_t i = 0; i < len; i++) acc[i] += w * static_cast<double>(v[i]);
}

// Four inputs per pass over the accumulators, still added one after the other (same order, same roundings):
// the accumulators are loaded and stored once per four input streams instead of once per input.
FEDSIM_MEAN_MULTIVERSION void accumulate4(double* acc, const float* const* v, const double* w, int64_t start,
                                          int64_t len) {
  const float* v0 = v[0] + start;
  const float* v1 = v[1] + start;
  const float* v2 = v[2] + start;
  const float* v3 = v[3] + start;
  const double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  for (int64_t i = 0; i < len; i++) {
    double a = acc[i] + w0 * static_cast<double>(v0[i]);
    a = a + w1 * static_cast<double>(v1[i]);
    a = a + w2 * static_cast<double>(v2[i]);
    acc[i] = a + w3 * static_cast<double>(v3[i]);
  }
}

FEDSIM_MEAN_MULTIVERSION void roundToFloat(const double* acc, float* out, int64_t len) {
  for (int64_t i = 0; i < len; i++) out[i] = static_cast<float>(acc[i]);
}

// out[i] = Σ_k weights[k] * vectors[k][i], accumulated in float64 from 0 in k order, as the JS does.
void weightedMeanBlocks(const std::vector<const float*>& vectors, const double* weights, float* out, int64_t n,
                        bool parallel) {
  const int64_t count = static_cast<int64_t>(vectors.size());
  const int64_t blocks = (n + kMeanBlock - 1) / kMeanBlock;
#pragma omp parallel for if (parallel) schedule(static)
  for (int64_t block = 0; block < blocks; block++) {
    alignas(64) double acc[kMeanBlock];
    const int64_t start = block * kMeanBlock;
    const int64_t len = std::min(kMeanBlock, n - start);
    std::fill(acc, acc + len, 0.0);
    int64_t k = 0;
    for (; k + 3 < count; k += 4) accumulate4(acc, vectors.data() + k, weights + k, start, len);
    for (; k < count; k++) accumulate(acc, vectors[k] + start, weights[k], len);
    roundToFloat(acc, out + start, len);
  }
}

// Bit 31 of the result is set when some element's exponent is all ones (NaN or ±Inf): adding 1 to the
// exponent field carries out of it exactly then. An OR reduction, so it vectorises on plain SSE2.
FEDSIM_MULTIVERSION bool anyNonFinite(const float* x, int64_t len) {
  const FloatBits* bits = reinterpret_cast<const FloatBits*>(x);
  uint32_t flags = 0;
  for (int64_t i = 0; i < len; i++) flags |= (bits[i] & 0x7f800000u) + 0x00800000u;
  return (flags & 0x80000000u) != 0;
}

int64_t firstNonFiniteIndex(const float* x, int64_t n, bool parallel) {
  const int64_t blocks = (n + kScanBlock - 1) / kScanBlock;
  int64_t first = INT64_MAX;
#pragma omp parallel for if (parallel) schedule(static) reduction(min : first)
  for (int64_t block = 0; block < blocks; block++) {
    // A static schedule gives each thread one ascending run of blocks: after a hit, the rest of its run
    // cannot hold an earlier index.
    if (first != INT64_MAX) continue;
    const int64_t start = block * kScanBlock;
    const int64_t len = std::min(kScanBlock, n - start);
    if (!anyNonFinite(x + start, len)) continue;
    for (int64_t i = start; i < start + len; i++) {
      if (!std::isfinite(x[i])) {
        first = i;
        break;
      }
    }
  }
  return first == INT64_MAX ? -1 : first;
}

FEDSIM_MULTIVERSION void subtractRange(const float* a, const float* b, float* out, int64_t n, bool parallel) {
  // float32 subtraction equals JS's float64 subtraction rounded to float32: float64 carries more than
  // 2 * 24 + 2 bits, so the double rounding is innocuous.
#pragma omp parallel for if (parallel) schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] - b[i];
}

// value + c·g in float32, each step rounded as tfjs's SGD rounds it (mul, then add; no fused multiply-add).
FEDSIM_MULTIVERSION void sgdStepRange(float* value, const float* g, float c, int64_t n) {
  for (int64_t i = 0; i < n; i++) value[i] = c * g[i] + value[i];
}

FEDSIM_MULTIVERSION void addScaledRange(float* out, const float* x, double scale, int64_t n, bool parallel) {
  // JS computes out[i] + scale * x[i] in float64 and rounds once on the store; so does this.
#pragma omp parallel for if (parallel) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    out[i] = static_cast<float>(static_cast<double>(out[i]) + scale * static_cast<double>(x[i]));
  }
}

// The arguments of weightedMean(vectors: Float32Array[], weights: Float64Array, out: Float32Array).
struct MeanArguments {
  std::vector<const float*> vectors;
  const double* weights = nullptr;
  float* out = nullptr;
  int64_t n = 0;

  MeanArguments(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3) {
      throw ArgError("expects (vectors, weights, out)");
    }
    size_t outLength = 0;
    out = static_cast<float*>(typedArrayData(env, argv[2], napi_float32_array, "out", &outLength));
    n = static_cast<int64_t>(outLength);
    bool isArray = false;
    napi_is_array(env, argv[0], &isArray);
    if (!isArray) throw ArgError("vectors must be an array of Float32Arrays");
    uint32_t count = 0;
    napi_get_array_length(env, argv[0], &count);
    if (count == 0) throw ArgError("vectors is empty");
    size_t weightCount = 0;
    weights = static_cast<const double*>(typedArrayData(env, argv[1], napi_float64_array, "weights", &weightCount));
    if (weightCount != count) {
      throw ArgError("weights has " + std::to_string(weightCount) + " entries for " + std::to_string(count) +
                     " vectors");
    }
    vectors.reserve(count);
    for (uint32_t k = 0; k < count; k++) {
      napi_value element;
      if (napi_get_element(env, argv[0], k, &element) != napi_ok) throw ArgError("cannot read vectors");
      size_t length = 0;
      const std::string name = "vectors[" + std::to_string(k) + "]";
      vectors.push_back(static_cast<const float*>(typedArrayData(env, element, napi_float32_array, name, &length)));
      if (length != outLength) {
        throw ArgError(name + " has length " + std::to_string(length) + ", out has " + std::to_string(outLength));
      }
    }
  }
};

size_t sameLength(size_t outLength, size_t xLength) {
  if (outLength != xLength) {
    throw ArgError("x has length " + std::to_string(xLength) + ", out has " + std::to_string(outLength));
  }
  return outLength;
}

}  // namespace

// weightedMean(vectors, weights, out): out[i] = Σ_k weights[k] * vectors[k][i] in float64, rounded to float32.
// `weights` are the final factors (the caller divides by their total), so both implementations use the
// very same doubles. `out` may be one of the vectors.
napi_value weightedMean(napi_env env, napi_callback_info info) {
  try {
    const MeanArguments args(env, info);
    bool parallel = args.n * static_cast<int64_t>(args.vectors.size()) > kPassParallelThreshold;
    for (const float* v : args.vectors) parallel = parallel && !partiallyOverlap(v, args.out, args.n);
    weightedMeanBlocks(args.vectors, args.weights, args.out, args.n, parallel);
    napi_value result;
    napi_get_undefined(env, &result);
    return result;
  } catch (const std::exception& err) {
    napi_throw_error(env, nullptr, (std::string("weightedMean: ") + err.what()).c_str());
    return nullptr;
  }
}

// firstNonFinite(x): index of the first NaN or ±Inf in x, or -1.
NAPI_EXPORT(firstNonFinite) {
  size_t length = 0;
  const float* x = args.f32(0, &length);
  const int64_t n = static_cast<int64_t>(length);
  const int64_t index = firstNonFiniteIndex(x, n, n > kPassParallelThreshold);
  napi_value result;
  napi_create_int64(args.env(), index, &result);
  return result;
}

// subtract(a, b, out): out[i] = a[i] - b[i]. out may be a or b itself, but may not partly overlap either:
// a SIMD chunk would read values it already wrote.
NAPI_EXPORT(subtract) {
  size_t aLength = 0, bLength = 0, outLength = 0;
  const float* a = args.f32(0, &aLength);
  const float* b = args.f32(1, &bLength);
  float* out = args.f32(2, &outLength);
  if (aLength != outLength || bLength != outLength) {
    throw ArgError("a has length " + std::to_string(aLength) + ", b " + std::to_string(bLength) + ", out " +
                   std::to_string(outLength));
  }
  const int64_t n = static_cast<int64_t>(outLength);
  if (partiallyOverlap(out, a, n) || partiallyOverlap(out, b, n)) throw ArgError("out partly overlaps an input");
  subtractRange(a, b, out, n, n > kPassParallelThreshold);
  return args.undefined();
}

// addScaledInPlace(out, x, scale): out[i] += scale * x[i], computed in float64.
NAPI_EXPORT(addScaledInPlace) {
  size_t outLength = 0, xLength = 0;
  float* out = args.f32(0, &outLength);
  const float* x = args.f32(1, &xLength);
  const double scale = args.number(2);
  const int64_t n = static_cast<int64_t>(sameLength(outLength, xLength));
  addScaledRange(out, x, scale, n, n > kPassParallelThreshold && !partiallyOverlap(out, x, n));
  return args.undefined();
}

// sgdStepInPlace(value, gradient, c): value[i] = float(c·g[i]) + value[i] in float32: tfjs's SGD update
// add(mul(c, g), value) with the same roundings, without the two new arrays it allocates.
NAPI_EXPORT(sgdStepInPlace) {
  size_t valueLength = 0, gradientLength = 0;
  float* value = args.f32(0, &valueLength);
  const float* gradient = args.f32(1, &gradientLength);
  const float c = static_cast<float>(args.number(2));
  const int64_t n = static_cast<int64_t>(sameLength(valueLength, gradientLength));
  if (partiallyOverlap(value, gradient, n) || value == gradient) throw ArgError("sgdStepInPlace: value and gradient overlap");
  sgdStepRange(value, gradient, c, n);
  return args.undefined();
}
