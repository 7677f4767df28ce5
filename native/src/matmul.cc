// Matrix products through oneDNN's sgemm, which beat OpenBLAS here and shares oneDNN's OpenMP team (a second
// BLAS thread pool would fight it for the 2 cores). Row-major, like TensorFlow.js.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

#include "args.h"
#include "dnnl_context.h"

namespace {
constexpr int64_t kSerialGemmMacs = int64_t{1} << 21;
// From this size a product with a transposed operand goes through a cached oneDNN matmul primitive (brgemm)
// instead of dnnl_sgemm: for a large Dense layer's backward products at small batches (dx = dz·Wᵀ,
// dW = xᵀ·dz) sgemm streamed the weights with a poor access pattern, and the primitive ran them in less CPU
// time; for untransposed products, and small ones, sgemm was as fast or faster.
constexpr int64_t kPrimitiveMacs = int64_t{1} << 23;

using dnnl::memory;

struct MatmulEntry {
  dnnl::matmul product;
  memory a, b, c;
};

using CacheKey = std::array<int64_t, 8>;

// Keyed by shape, transposes, OpenMP team size (a primitive partitions its work for the team it was built
// for) and, for an accumulating product, its scale. Training uses a handful of keys (a learning-rate
// schedule adds one per rate); the cap guards against a caller sweeping them forever.
std::map<CacheKey, MatmulEntry>& matmulCache() {
  static std::map<CacheKey, MatmulEntry> cache;
  return cache;
}

// accumulate: c = scale·(op(a)·op(b)) + c, the scale applied before the sum (oneDNN's output scale, then its
// sum post-op); otherwise c = op(a)·op(b).
MatmulEntry& matmulPrimitive(int64_t m, int64_t n, int64_t k, bool transposeA, bool transposeB, bool accumulate,
                             float scale) {
  int32_t scaleBits = 0;
  if (accumulate) std::memcpy(&scaleBits, &scale, sizeof scaleBits);
  const CacheKey key{m, n, k, transposeA, transposeB, omp_get_max_threads(), accumulate, scaleBits};
  auto& cache = matmulCache();
  auto found = cache.find(key);
  if (found != cache.end()) return found->second;
  if (cache.size() >= 64) cache.clear();
  // Row-major operands; a transpose is the same buffer read with swapped strides.
  const memory::desc aDesc({m, k}, memory::data_type::f32, transposeA ? memory::dims{1, m} : memory::dims{k, 1});
  const memory::desc bDesc({k, n}, memory::data_type::f32, transposeB ? memory::dims{1, k} : memory::dims{n, 1});
  const memory::desc cDesc({m, n}, memory::data_type::f32, memory::dims{n, 1});
  dnnl::primitive_attr attr;
  if (accumulate) {
    attr.set_output_scales(0, {scale});
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    attr.set_post_ops(sum);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(aDesc, bDesc, cDesc), attr, cpuEngine());
  MatmulEntry entry{dnnl::matmul(pd), memory(aDesc, cpuEngine(), nullptr), memory(bDesc, cpuEngine(), nullptr),
                    memory(cDesc, cpuEngine(), nullptr)};
  return cache.emplace(key, std::move(entry)).first->second;
}

// c = op(a) · op(b) (accumulate false), or c = scale·(op(a) · op(b)) + c; row-major.
void gemm(bool transposeA, bool transposeB, int64_t m, int64_t n, int64_t k, const float* a, const float* b,
          float* c, bool accumulate = false, float scale = 1.0f) {
  if ((transposeA || transposeB) && m * n * k >= kPrimitiveMacs) {
    MatmulEntry& entry = matmulPrimitive(m, n, k, transposeA, transposeB, accumulate, scale);
    entry.a.set_data_handle(const_cast<float*>(a));
    entry.b.set_data_handle(const_cast<float*>(b));
    entry.c.set_data_handle(c);
    entry.product.execute(cpuStream(), {{DNNL_ARG_SRC, entry.a}, {DNNL_ARG_WEIGHTS, entry.b}, {DNNL_ARG_DST, entry.c}});
    cpuStream().wait();
    return;
  }
  const int64_t lda = transposeA ? m : k, ldb = transposeB ? k : n;
  dnnl_status_t status = dnnl_sgemm(transposeA ? 'T' : 'N', transposeB ? 'T' : 'N', m, n, k, accumulate ? scale : 1.0f,
                                    a, lda, b, ldb, accumulate ? 1.0f : 0.0f, c, n);
  if (status != dnnl_success) throw ArgError("dnnl_sgemm failed with status " + std::to_string(status));
}

// The epilogue's common cases as loops the compiler vectorises: a per-column bias (a Dense layer's) and a
// bare relu. The general loop below them divides per element, which cost more than the product itself for
// a Dense layer's batch of 50. Relu maps NaN to 0 in every case (value > 0 ? value : 0).
FEDSIM_MULTIVERSION void addRowBias(float* c, int64_t rows, const float* bias, int64_t len, bool relu) {
#pragma omp parallel for if (rows * len > kParallelThreshold) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    float* row = c + r * len;
    if (relu) {
      for (int64_t j = 0; j < len; j++) {
        const float value = row[j] + bias[j];
        row[j] = value > 0.0f ? value : 0.0f;
      }
    } else {
      for (int64_t j = 0; j < len; j++) row[j] += bias[j];
    }
  }
}

FEDSIM_MULTIVERSION void reluInPlace(float* c, int64_t n) {
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t j = 0; j < n; j++) c[j] = c[j] > 0.0f ? c[j] : 0.0f;
}
// Runs `body` with OpenMP's team cut to one thread for a product under kSerialGemmMacs: it takes tens of
// microseconds on one core, and waking the team costs about as much on an idle machine and far more on a busy
// one (every region waits for all its threads).
template <typename Body>
void withTeamFor(int64_t macs, Body body) {
  const int savedThreads = omp_get_max_threads();
  const bool serial = macs < kSerialGemmMacs && savedThreads > 1;
  if (serial) omp_set_num_threads(1);
  struct RestoreThreads {
    bool active;
    int threads;
    ~RestoreThreads() {
      if (active) omp_set_num_threads(threads);
    }
  } restore{serial, savedThreads};
  body();
}
}  // namespace

// matmul(a, b, c, batchA, batchB, m, n, k, transposeA, transposeB, bias | null, biasInner, relu):
// c[i] = relu?(op(a[i]) · op(b[i]) + bias) for i < max(batchA, batchB); a batch of 1 is broadcast.
// The bias element for c's flat index j is bias[(j / biasInner) % bias.length], which covers a per-column
// bias (biasInner 1, length n), a scalar, and a full-size bias.
NAPI_EXPORT(matmul) {
  SignalBlock held;  // see args.h: oneDNN's JIT gemm must not be interrupted by a signal
  size_t aLen, bLen, cLen, biasLen;
  const float* a = args.f32(0, &aLen);
  const float* b = args.f32(1, &bLen);
  float* c = args.f32(2, &cLen);
  const int64_t batchA = args.integer(3), batchB = args.integer(4);
  const int64_t m = args.integer(5), n = args.integer(6), k = args.integer(7);
  const bool transposeA = args.flag(8), transposeB = args.flag(9);
  const float* bias = args.f32OrNull(10, &biasLen);
  const int64_t biasInner = args.integer(11);
  const bool relu = args.flag(12);
  const int64_t batch = std::max(batchA, batchB);
  if (batchA < 1 || batchB < 1 || (batchA != batchB && batchA != 1 && batchB != 1)) throw ArgError("batch sizes do not broadcast");
  if (static_cast<int64_t>(aLen) != batchA * m * k || static_cast<int64_t>(bLen) != batchB * k * n ||
      static_cast<int64_t>(cLen) != batch * m * n) {
    throw ArgError("operand sizes do not match the product's dimensions");
  }
  if (bias != nullptr && (biasLen == 0 || biasInner < 1)) throw ArgError("bias must be non-empty with biasInner >= 1");
  withTeamFor(m * n * k, [&] {
    for (int64_t i = 0; i < batch; i++) {
      const float* ai = a + (batchA == 1 ? 0 : i * m * k);
      const float* bi = b + (batchB == 1 ? 0 : i * k * n);
      float* ci = c + i * m * n;
      if (k == 0) {
        std::fill(ci, ci + m * n, 0.0f);
        continue;
      }
      gemm(transposeA, transposeB, m, n, k, ai, bi, ci);
    }
  });
  if (bias == nullptr && !relu) return args.undefined();
  const int64_t total = batch * m * n;
  const int64_t len = static_cast<int64_t>(biasLen);
  if (bias == nullptr) {
    reluInPlace(c, total);
    return args.undefined();
  }
  if (biasInner == 1 && total % len == 0) {
    addRowBias(c, total / len, bias, len, relu);
    return args.undefined();
  }
#pragma omp parallel for if (total > kParallelThreshold) schedule(static)
  for (int64_t j = 0; j < total; j++) {
    float value = c[j];
    if (bias != nullptr) value += bias[(j / biasInner) % len];
    if (relu) value = value > 0.0f ? value : 0.0f;
    c[j] = value;
  }
  return args.undefined();
}

// gradientStep(a, b, w, m, n, k, transposeA, transposeB, c): w = c·(op(a)·op(b)) + w, e.g. a Dense layer's SGD
// step w − lr·(xᵀ·dz) with c = −lr, folded into the weight-gradient product: the gradient is never written
// out and read back, which for a large layer at a small batch cost more than the product. The product is
// scaled, then added, as tfjs's SGD adds float(c·g) to the weight (up to the library's rounding of
// c·g + w, which may be fused).
NAPI_EXPORT(gradientStep) {
  SignalBlock held;  // see args.h: oneDNN's JIT gemm must not be interrupted by a signal
  size_t aLen, bLen, wLen;
  const float* a = args.f32(0, &aLen);
  const float* b = args.f32(1, &bLen);
  float* w = args.f32(2, &wLen);
  const int64_t m = args.integer(3), n = args.integer(4), k = args.integer(5);
  const bool transposeA = args.flag(6), transposeB = args.flag(7);
  const float c = static_cast<float>(args.number(8));
  if (m < 1 || n < 1 || k < 1) throw ArgError("gradientStep needs m, n, k >= 1");
  if (static_cast<int64_t>(aLen) != m * k || static_cast<int64_t>(bLen) != k * n ||
      static_cast<int64_t>(wLen) != m * n) {
    throw ArgError("operand sizes do not match the product's dimensions");
  }
  const auto overlaps = [&](const float* x, size_t xLen) { return x < w + wLen && w < x + xLen; };
  if (overlaps(a, aLen) || overlaps(b, bLen)) throw ArgError("gradientStep: w may not overlap an operand");
  withTeamFor(m * n * k, [&] { gemm(transposeA, transposeB, m, n, k, a, b, w, true, c); });
  return args.undefined();
}
