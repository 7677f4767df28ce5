// Elementwise ops and sums: memory-bound loops, split across OpenMP threads only when large enough to pay.
// The hot loops are built twice (AVX2 and baseline x86-64) and picked at load time, so the binary stays
// portable without -march=native.
#include <cmath>
#include <vector>

#include "args.h"


namespace {

// kReluGrad: a is dy, b is relu's input x; dy where x > 0, else what dy * step(x) gives (0, or NaN).
enum BinaryOp { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3, kMaximum = 4, kSquaredDifference = 5, kReluGrad = 6 };
enum UnaryOp { kRelu = 0, kStep = 1, kNeg = 2, kExp = 3, kLog = 4, kSquare = 5, kSqrt = 6, kReciprocal = 7 };

template <int Op>
inline float apply(float a, float b) {
  if constexpr (Op == kAdd) return a + b;
  if constexpr (Op == kSub) return a - b;
  if constexpr (Op == kMul) return a * b;
  if constexpr (Op == kDiv) return a / b;
  // Selects, not branches, so the loops vectorise. NaN in either operand gives NaN, as Math.max does.
  if constexpr (Op == kMaximum) {
    float larger = a > b ? a : b;
    larger = b != b ? b : larger;
    return a != a ? a : larger;
  }
  if constexpr (Op == kSquaredDifference) return (a - b) * (a - b);
  if constexpr (Op == kReluGrad) {
    float step = b > 0.0f ? 1.0f : 0.0f;
    step = b != b ? b : step;
    return a * step;
  }
  return 0.0f;
}

// Operand element for output index i: operand[(i / inner) % length]. inner = 1 and length = n is the plain
// case; length 1 a scalar; inner = 1, length < n a trailing-axes broadcast (a bias); inner > 1 a leading-axes
// one (e.g. x - max(x, keepDims)).
struct Operand {
  const float* data;
  int64_t length;
  int64_t inner;
};

template <int Op>
FEDSIM_MULTIVERSION void binarySame(const float* a, const float* b, float* out, int64_t n) {
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; i++) out[i] = apply<Op>(a[i], b[i]);
}

// a is full size; b repeats every b.length elements (bias-style). Swapped when a is the repeating one.
template <int Op, bool Swapped>
FEDSIM_MULTIVERSION void binaryRepeat(const float* full, const float* period, int64_t periodLength, float* out,
                                      int64_t n) {
  const int64_t blocks = n / periodLength;
  if (periodLength == 1) {
    const float s = period[0];
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = Swapped ? apply<Op>(s, full[i]) : apply<Op>(full[i], s);
    return;
  }
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t block = 0; block < blocks; block++) {
    const float* f = full + block * periodLength;
    float* o = out + block * periodLength;
    for (int64_t j = 0; j < periodLength; j++) o[j] = Swapped ? apply<Op>(period[j], f[j]) : apply<Op>(f[j], period[j]);
  }
}

template <int Op>
void binaryGeneral(const Operand& a, const Operand& b, float* out, int64_t n) {
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    out[i] = apply<Op>(a.data[(i / a.inner) % a.length], b.data[(i / b.inner) % b.length]);
  }
}

template <int Op>
void binary(const Operand& a, const Operand& b, float* out, int64_t n) {
  if (a.length == n && b.length == n) return binarySame<Op>(a.data, b.data, out, n);
  if (a.length == n && b.inner == 1 && n % b.length == 0) return binaryRepeat<Op, false>(a.data, b.data, b.length, out, n);
  if (b.length == n && a.inner == 1 && n % a.length == 0) return binaryRepeat<Op, true>(b.data, a.data, a.length, out, n);
  binaryGeneral<Op>(a, b, out, n);
}

template <int Op>
FEDSIM_MULTIVERSION void unary(const float* x, float* out, int64_t n, float alpha) {
#pragma omp parallel for if (n > kParallelThreshold) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    // The cpu backend's formulas (x < 0 ? 0 : x keeps NaN and -0), written as selects so they vectorise.
    if constexpr (Op == kRelu) out[i] = v < 0.0f ? 0.0f : v;
    if constexpr (Op == kStep) {
      const float step = v > 0.0f ? 1.0f : alpha;
      out[i] = v != v ? v : step;
    }
    if constexpr (Op == kNeg) out[i] = -v;
    if constexpr (Op == kExp) out[i] = std::exp(v);
    if constexpr (Op == kLog) out[i] = std::log(v);
    if constexpr (Op == kSquare) out[i] = v * v;
    if constexpr (Op == kSqrt) out[i] = std::sqrt(v);
    if constexpr (Op == kReciprocal) out[i] = 1.0f / v;
  }
}

}  // namespace

// binary(op, a, aInner, b, bInner, out): out[i] = a[(i / aInner) % a.length] op b[(i / bInner) % b.length].
NAPI_EXPORT(binary) {
  const int64_t op = args.integer(0);
  size_t aLen, bLen, outLen;
  Operand a{args.f32(1, &aLen), 0, args.integer(2)};
  Operand b{args.f32(3, &bLen), 0, args.integer(4)};
  float* out = args.f32(5, &outLen);
  a.length = static_cast<int64_t>(aLen);
  b.length = static_cast<int64_t>(bLen);
  const int64_t n = static_cast<int64_t>(outLen);
  if (n == 0) return args.undefined();
  if (a.length == 0 || b.length == 0 || a.inner < 1 || b.inner < 1) throw ArgError("empty operand or inner < 1");
  switch (op) {
    case kAdd: binary<kAdd>(a, b, out, n); break;
    case kSub: binary<kSub>(a, b, out, n); break;
    case kMul: binary<kMul>(a, b, out, n); break;
    case kDiv: binary<kDiv>(a, b, out, n); break;
    case kMaximum: binary<kMaximum>(a, b, out, n); break;
    case kSquaredDifference: binary<kSquaredDifference>(a, b, out, n); break;
    case kReluGrad: binary<kReluGrad>(a, b, out, n); break;
    default: throw ArgError("unknown binary op " + std::to_string(op));
  }
  return args.undefined();
}

// unary(op, x, out, alpha): alpha is Step's value for x <= 0 and ignored by the other ops.
NAPI_EXPORT(unary) {
  const int64_t op = args.integer(0);
  size_t xLen, outLen;
  const float* x = args.f32(1, &xLen);
  float* out = args.f32(2, &outLen);
  const float alpha = static_cast<float>(args.number(3));
  if (xLen != outLen) throw ArgError("out must have x's size");
  const int64_t n = static_cast<int64_t>(xLen);
  switch (op) {
    case kRelu: unary<kRelu>(x, out, n, alpha); break;
    case kStep: unary<kStep>(x, out, n, alpha); break;
    case kNeg: unary<kNeg>(x, out, n, alpha); break;
    case kExp: unary<kExp>(x, out, n, alpha); break;
    case kLog: unary<kLog>(x, out, n, alpha); break;
    case kSquare: unary<kSquare>(x, out, n, alpha); break;
    case kSqrt: unary<kSqrt>(x, out, n, alpha); break;
    case kReciprocal: unary<kReciprocal>(x, out, n, alpha); break;
    default: throw ArgError("unknown unary op " + std::to_string(op));
  }
  return args.undefined();
}

// sum(x, out, outer, reduce, inner): x viewed as [outer, reduce, inner], out[o, j] = Σ_r x[o, r, j].
// Accumulates in double, as the cpu backend (JavaScript numbers) does, so long sums match it closely.
NAPI_EXPORT(sum) {
  size_t xLen, outLen;
  const float* x = args.f32(0, &xLen);
  float* out = args.f32(1, &outLen);
  const int64_t outer = args.integer(2), reduce = args.integer(3), inner = args.integer(4);
  if (outer < 0 || reduce < 0 || inner < 1 || static_cast<int64_t>(xLen) != outer * reduce * inner ||
      static_cast<int64_t>(outLen) != outer * inner) {
    throw ArgError("sizes do not match [outer, reduce, inner]");
  }
  if (inner == 1) {
#pragma omp parallel for if (static_cast<int64_t>(xLen) > kParallelThreshold) schedule(static)
    for (int64_t o = 0; o < outer; o++) {
      const float* row = x + o * reduce;
      double total = 0.0;
      for (int64_t r = 0; r < reduce; r++) total += row[r];
      out[o] = static_cast<float>(total);
    }
    return args.undefined();
  }
  // Column sums (a bias gradient): each thread sums a contiguous range of rows, then the partials are added.
  for (int64_t o = 0; o < outer; o++) {
    const float* block = x + o * reduce * inner;
    std::vector<double> totals(inner, 0.0);
#pragma omp parallel if (reduce * inner > kParallelThreshold)
    {
      std::vector<double> partial(inner, 0.0);
#pragma omp for schedule(static) nowait
      for (int64_t r = 0; r < reduce; r++) {
        const float* row = block + r * inner;
        for (int64_t j = 0; j < inner; j++) partial[j] += row[j];
      }
#pragma omp critical
      for (int64_t j = 0; j < inner; j++) totals[j] += partial[j];
    }
    for (int64_t j = 0; j < inner; j++) out[o * inner + j] = static_cast<float>(totals[j]);
  }
  return args.undefined();
}
