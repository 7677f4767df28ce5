// The aggregation benchmark's reference: the physical limit of a weighted sum over many client updates.
//
// out[i] = sum_k w[k] * v[k][i] over the very Float32Arrays fedsim aggregates, done the fastest plain way
// this machine allows: float32 fused multiply-adds (-O3 -march=native: whatever SIMD the CPU has),
// cache-blocked so every update byte is read from memory once and the running sums stay in L1, four
// update streams per pass over the block, split over `threads` OpenMP threads by block. The work is
// memory-bound, so this is about the rate at which these cores can read the bytes at all.
//
// bench/references/aggregation-reference.ts compiles it with g++ when the benchmark runs and loads it as
// a Node-API module; nothing in the product loads it.
#include <node_api.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

// 4,096 floats = 16 KB of running sums: they stay in L1 while each update's slice streams past.
constexpr int64_t kBlock = 4096;

void sumBlock(const std::vector<const float*>& v, const float* w, float* out, int64_t start, int64_t len) {
  alignas(64) float acc[kBlock];
  std::fill(acc, acc + len, 0.0f);
  const int64_t count = static_cast<int64_t>(v.size());
  int64_t k = 0;
  for (; k + 3 < count; k += 4) {
    const float* a = v[k] + start;
    const float* b = v[k + 1] + start;
    const float* c = v[k + 2] + start;
    const float* d = v[k + 3] + start;
    const float wa = w[k], wb = w[k + 1], wc = w[k + 2], wd = w[k + 3];
#pragma omp simd aligned(acc : 64)
    for (int64_t i = 0; i < len; i++) acc[i] += wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
  }
  for (; k < count; k++) {
    const float* a = v[k] + start;
    const float wa = w[k];
#pragma omp simd aligned(acc : 64)
    for (int64_t i = 0; i < len; i++) acc[i] += wa * a[i];
  }
  std::copy(acc, acc + len, out + start);
}

void weightedSum(const std::vector<const float*>& v, const float* w, float* out, int64_t n, int threads) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t block = 0; block < blocks; block++) {
    const int64_t start = block * kBlock;
    sumBlock(v, w, out, start, std::min(kBlock, n - start));
  }
}

napi_value fail(napi_env env, const char* message) {
  napi_throw_error(env, nullptr, message);
  return nullptr;
}

float* floats(napi_env env, napi_value value, size_t* length) {
  bool typed = false;
  napi_is_typedarray(env, value, &typed);
  if (!typed) return nullptr;
  napi_typedarray_type type;
  void* data = nullptr;
  napi_get_typedarray_info(env, value, &type, length, &data, nullptr, nullptr);
  return type == napi_float32_array ? static_cast<float*>(data) : nullptr;
}

// weightedSum(vectors: Float32Array[], weights: Float32Array, out: Float32Array, threads: number)
napi_value WeightedSum(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 4) return fail(env, "weightedSum(vectors, weights, out, threads)");
  size_t n = 0, count = 0;
  float* out = floats(env, argv[2], &n);
  const float* w = floats(env, argv[1], &count);
  int32_t threads = 1;
  napi_get_value_int32(env, argv[3], &threads);
  uint32_t given = 0;
  napi_get_array_length(env, argv[0], &given);
  if (out == nullptr || w == nullptr || given != count || threads < 1) return fail(env, "bad arguments");
  std::vector<const float*> v(count);
  for (uint32_t k = 0; k < count; k++) {
    napi_value element;
    napi_get_element(env, argv[0], k, &element);
    size_t length = 0;
    v[k] = floats(env, element, &length);
    if (v[k] == nullptr || length != n) return fail(env, "every vector must be a Float32Array as long as out");
  }
  weightedSum(v, w, out, static_cast<int64_t>(n), threads);
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "weightedSum", NAPI_AUTO_LENGTH, WeightedSum, nullptr, &fn);
  napi_set_named_property(env, exports, "weightedSum", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
