// Conv2D and its two gradients through oneDNN, on TensorFlow.js layouts: activations NHWC, filters HWIO
// ([kh, kw, in, out]). Activations are handed to oneDNN as NHWC directly (its AVX-512/AVX2 kernels support
// channels-last); the filter is reordered to whatever blocked layout the chosen kernel wants, which costs a
// pass over the (small) filter per call. Primitives are cached per geometry: building one takes ~0.1-1 ms,
// running one at training sizes a few ms.
#include <map>
#include <unordered_map>
#include <memory>
#include <vector>

#include "args.h"
#include "dnnl_context.h"

using dnnl::memory;
using tag = memory::format_tag;

namespace {

// Geometry from JavaScript: tfjs's computeConv2DInfo, flattened. The order is part of the ABI with
// common/tf/native-conv-kernels.ts.
struct Geometry {
  int64_t n, h, w, c, kh, kw, oc, oh, ow, sh, sw, dh, dw, pt, pl, pb, pr;
  static constexpr size_t kLength = 17;
  explicit Geometry(const int32_t* g)
      : n(g[0]), h(g[1]), w(g[2]), c(g[3]), kh(g[4]), kw(g[5]), oc(g[6]), oh(g[7]), ow(g[8]), sh(g[9]),
        sw(g[10]), dh(g[11]), dw(g[12]), pt(g[13]), pl(g[14]), pb(g[15]), pr(g[16]) {}
  memory::desc src() const { return {{n, c, h, w}, memory::data_type::f32, tag::nhwc}; }
  memory::desc dst() const { return {{n, oc, oh, ow}, memory::data_type::f32, tag::nhwc}; }
  memory::desc userWeights() const { return {{oc, c, kh, kw}, memory::data_type::f32, tag::hwio}; }
  memory::desc anyWeights() const { return {{oc, c, kh, kw}, memory::data_type::f32, tag::any}; }
  memory::desc bias() const { return {{oc}, memory::data_type::f32, tag::x}; }
  memory::dims strides() const { return {sh, sw}; }
  // oneDNN counts dilation from 0 (no dilation), TensorFlow.js from 1.
  memory::dims dilates() const { return {dh - 1, dw - 1}; }
  memory::dims padL() const { return {pt, pl}; }
  memory::dims padR() const { return {pb, pr}; }
};

std::vector<int64_t> cacheKey(int kind, const int32_t* g, bool bias, bool relu) {
  std::vector<int64_t> key(g, g + Geometry::kLength);
  key.push_back(kind);
  key.push_back(bias ? 1 : 0);
  key.push_back(relu ? 1 : 0);
  return key;
}

// A weights buffer in the primitive's preferred layout, plus the reorder from (or to) the user's HWIO.
struct WeightsPort {
  memory user;
  memory inner;
  dnnl::reorder convert;  // empty when the layouts already agree
  bool same = true;

  void init(const memory::desc& userDesc, const memory::desc& innerDesc, bool toUser) {
    user = memory(userDesc, cpuEngine(), nullptr);
    same = userDesc == innerDesc;
    if (same) return;
    inner = memory(innerDesc, cpuEngine());
    convert = toUser ? dnnl::reorder(inner, user) : dnnl::reorder(user, inner);
  }
  memory& forPrimitive() { return same ? user : inner; }
};

struct Forward {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
  WeightsPort weights;
};
struct BackwardData {
  dnnl::convolution_backward_data conv;
  WeightsPort weights;
  memory::desc diffSrc, diffDst;
};
struct BackwardWeights {
  dnnl::convolution_backward_weights conv;
  WeightsPort weights;
  memory::desc src, diffDst;
};

dnnl::convolution_forward::primitive_desc forwardDesc(const Geometry& g, bool bias, bool relu, dnnl::prop_kind kind) {
  auto algo = dnnl::algorithm::convolution_direct;
  auto desc = bias ? dnnl::convolution_forward::desc(kind, algo, g.src(), g.anyWeights(), g.bias(), g.dst(),
                                                     g.strides(), g.dilates(), g.padL(), g.padR())
                   : dnnl::convolution_forward::desc(kind, algo, g.src(), g.anyWeights(), g.dst(), g.strides(),
                                                     g.dilates(), g.padL(), g.padR());
  dnnl::primitive_attr attr;
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  return dnnl::convolution_forward::primitive_desc(desc, attr, cpuEngine());
}

// Cached primitives. A training run uses a handful of geometries; the cap only guards against a caller
// that sweeps shapes forever.
template <typename T>
T& cached(std::map<std::vector<int64_t>, std::unique_ptr<T>>& cache, const std::vector<int64_t>& key,
          std::unique_ptr<T> (*build)(const Geometry&, bool, bool), const Geometry& g, bool bias, bool relu) {
  auto found = cache.find(key);
  if (found != cache.end()) return *found->second;
  if (cache.size() >= 256) cache.clear();
  auto& slot = cache[key];
  slot = build(g, bias, relu);
  return *slot;
}

std::unique_ptr<Forward> buildForward(const Geometry& g, bool bias, bool relu) {
  auto entry = std::make_unique<Forward>();
  entry->pd = forwardDesc(g, bias, relu, dnnl::prop_kind::forward_training);
  entry->conv = dnnl::convolution_forward(entry->pd);
  entry->weights.init(g.userWeights(), entry->pd.weights_desc(), false);
  return entry;
}

std::unique_ptr<BackwardData> buildBackwardData(const Geometry& g, bool, bool) {
  auto entry = std::make_unique<BackwardData>();
  auto hint = forwardDesc(g, false, false, dnnl::prop_kind::forward_training);
  dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, g.src(), g.anyWeights(), g.dst(),
                                             g.strides(), g.dilates(), g.padL(), g.padR());
  dnnl::convolution_backward_data::primitive_desc pd(desc, cpuEngine(), hint);
  entry->conv = dnnl::convolution_backward_data(pd);
  entry->weights.init(g.userWeights(), pd.weights_desc(), false);
  entry->diffSrc = g.src();
  entry->diffDst = g.dst();
  return entry;
}

std::unique_ptr<BackwardWeights> buildBackwardWeights(const Geometry& g, bool, bool) {
  auto entry = std::make_unique<BackwardWeights>();
  auto hint = forwardDesc(g, false, false, dnnl::prop_kind::forward_training);
  dnnl::convolution_backward_weights::desc desc(dnnl::algorithm::convolution_direct, g.src(), g.anyWeights(),
                                                g.dst(), g.strides(), g.dilates(), g.padL(), g.padR());
  dnnl::convolution_backward_weights::primitive_desc pd(desc, cpuEngine(), hint);
  entry->conv = dnnl::convolution_backward_weights(pd);
  entry->weights.init(g.userWeights(), pd.diff_weights_desc(), true);
  entry->src = g.src();
  entry->diffDst = g.dst();
  return entry;
}

std::map<std::vector<int64_t>, std::unique_ptr<Forward>> forwardCache;
std::map<std::vector<int64_t>, std::unique_ptr<BackwardData>> backwardDataCache;
std::map<std::vector<int64_t>, std::unique_ptr<BackwardWeights>> backwardWeightsCache;

void checkLength(size_t actual, int64_t expected, const char* what) {
  if (static_cast<int64_t>(actual) != expected) {
    throw ArgError(std::string(what) + " has " + std::to_string(actual) + " elements, expected " +
                   std::to_string(expected));
  }
}

}  // namespace

// conv2d(x, filter, bias | null, y, geometry, relu): y = relu?(conv(x, filter) + bias).
NAPI_EXPORT(conv2d) {
  SignalBlock held;  // see args.h: oneDNN's JIT gemm must not be interrupted by a signal
  size_t xLen, wLen, bLen, yLen;
  float* x = args.f32(0, &xLen);
  float* w = args.f32(1, &wLen);
  float* b = args.f32OrNull(2, &bLen);
  float* y = args.f32(3, &yLen);
  const int32_t* dims = args.i32s(4, Geometry::kLength);
  bool relu = args.flag(5);
  Geometry g(dims);
  checkLength(xLen, g.n * g.h * g.w * g.c, "x");
  checkLength(wLen, g.kh * g.kw * g.c * g.oc, "filter");
  checkLength(yLen, g.n * g.oh * g.ow * g.oc, "y");
  if (b != nullptr) checkLength(bLen, g.oc, "bias");
  Forward& f = cached(forwardCache, cacheKey(0, dims, b != nullptr, relu), buildForward, g, b != nullptr, relu);
  f.weights.user.set_data_handle(w);
  if (!f.weights.same) f.weights.convert.execute(cpuStream(), f.weights.user, f.weights.inner);
  memory src(g.src(), cpuEngine(), x);
  memory dst(g.dst(), cpuEngine(), y);
  std::unordered_map<int, memory> io{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, f.weights.forPrimitive()}, {DNNL_ARG_DST, dst}};
  if (b != nullptr) io.emplace(DNNL_ARG_BIAS, memory(g.bias(), cpuEngine(), b));
  f.conv.execute(cpuStream(), io);
  cpuStream().wait();
  return args.undefined();
}

// conv2dBackpropInput(dy, filter, dx, geometry): dx = the gradient of conv(x, filter) with respect to x.
NAPI_EXPORT(conv2dBackpropInput) {
  SignalBlock held;  // see args.h: oneDNN's JIT gemm must not be interrupted by a signal
  size_t dyLen, wLen, dxLen;
  float* dy = args.f32(0, &dyLen);
  float* w = args.f32(1, &wLen);
  float* dx = args.f32(2, &dxLen);
  const int32_t* dims = args.i32s(3, Geometry::kLength);
  Geometry g(dims);
  checkLength(dyLen, g.n * g.oh * g.ow * g.oc, "dy");
  checkLength(wLen, g.kh * g.kw * g.c * g.oc, "filter");
  checkLength(dxLen, g.n * g.h * g.w * g.c, "dx");
  BackwardData& e = cached(backwardDataCache, cacheKey(1, dims, false, false), buildBackwardData, g, false, false);
  e.weights.user.set_data_handle(w);
  if (!e.weights.same) e.weights.convert.execute(cpuStream(), e.weights.user, e.weights.inner);
  e.conv.execute(cpuStream(), {{DNNL_ARG_DIFF_DST, memory(e.diffDst, cpuEngine(), dy)},
                               {DNNL_ARG_WEIGHTS, e.weights.forPrimitive()},
                               {DNNL_ARG_DIFF_SRC, memory(e.diffSrc, cpuEngine(), dx)}});
  cpuStream().wait();
  return args.undefined();
}

// conv2dBackpropFilter(x, dy, dw, geometry): dw = the gradient of conv(x, filter) with respect to filter.
NAPI_EXPORT(conv2dBackpropFilter) {
  SignalBlock held;  // see args.h: oneDNN's JIT gemm must not be interrupted by a signal
  size_t xLen, dyLen, dwLen;
  float* x = args.f32(0, &xLen);
  float* dy = args.f32(1, &dyLen);
  float* dw = args.f32(2, &dwLen);
  const int32_t* dims = args.i32s(3, Geometry::kLength);
  Geometry g(dims);
  checkLength(xLen, g.n * g.h * g.w * g.c, "x");
  checkLength(dyLen, g.n * g.oh * g.ow * g.oc, "dy");
  checkLength(dwLen, g.kh * g.kw * g.c * g.oc, "dw");
  BackwardWeights& e =
      cached(backwardWeightsCache, cacheKey(2, dims, false, false), buildBackwardWeights, g, false, false);
  e.weights.user.set_data_handle(dw);
  e.conv.execute(cpuStream(), {{DNNL_ARG_SRC, memory(e.src, cpuEngine(), x)},
                               {DNNL_ARG_DIFF_DST, memory(e.diffDst, cpuEngine(), dy)},
                               {DNNL_ARG_DIFF_WEIGHTS, e.weights.forPrimitive()}});
  if (!e.weights.same) e.weights.convert.execute(cpuStream(), e.weights.inner, e.weights.user);
  cpuStream().wait();
  return args.undefined();
}
