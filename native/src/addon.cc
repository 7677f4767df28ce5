// Entry point of fedsim's native kernels: registers the exported functions and owns the oneDNN engine.
// Loaded by common/tf/native.ts; see docs/NATIVE.md.
#include <omp.h>

#include "args.h"
#include "dnnl_context.h"

napi_value conv2d(napi_env, napi_callback_info);
napi_value conv2dBackpropInput(napi_env, napi_callback_info);
napi_value conv2dBackpropFilter(napi_env, napi_callback_info);
napi_value matmul(napi_env, napi_callback_info);
napi_value gradientStep(napi_env, napi_callback_info);
napi_value maxPool(napi_env, napi_callback_info);
napi_value maxPoolGrad(napi_env, napi_callback_info);
napi_value binary(napi_env, napi_callback_info);
napi_value unary(napi_env, napi_callback_info);
napi_value sum(napi_env, napi_callback_info);
napi_value weightedMean(napi_env, napi_callback_info);
napi_value firstNonFinite(napi_env, napi_callback_info);
napi_value subtract(napi_env, napi_callback_info);
napi_value addScaledInPlace(napi_env, napi_callback_info);
napi_value sgdStepInPlace(napi_env, napi_callback_info);

dnnl::engine& cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpuStream() {
  static dnnl::stream stream(cpuEngine());
  return stream;
}

namespace {

const char* isaName(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_all: return "all";
  }
  return "unknown";
}

napi_value makeString(napi_env env, const std::string& text) {
  napi_value value;
  napi_create_string_utf8(env, text.c_str(), text.size(), &value);
  return value;
}

napi_value makeNumber(napi_env env, double number) {
  napi_value value;
  napi_create_double(env, number, &value);
  return value;
}

}  // namespace

// info(): { dnnlVersion: "2.6.3", isa: "avx512_core", threads }
NAPI_EXPORT(info) {
  napi_env env = args.env();
  const dnnl_version_t* version = dnnl_version();
  napi_value result;
  napi_create_object(env, &result);
  std::string text = std::to_string(version->major) + "." + std::to_string(version->minor) + "." +
                     std::to_string(version->patch);
  napi_set_named_property(env, result, "dnnlVersion", makeString(env, text));
  napi_set_named_property(env, result, "isa", makeString(env, isaName(dnnl_get_effective_cpu_isa())));
  napi_set_named_property(env, result, "threads", makeNumber(env, omp_get_max_threads()));
  return result;
}

// Starts OpenMP's threads now, with asynchronous signals blocked, so every worker inherits that mask (see
// SignalBlock in args.h). libgomp keeps its workers, so later regions reuse these threads.
static void startThreadPool() {
  SignalBlock held;
#pragma omp parallel
  {
    // Nothing to do: the region only makes libgomp create the team.
  }
}

// setThreads(n): the OpenMP team size for oneDNN and the addon's own loops (calls from this thread).
NAPI_EXPORT(setThreads) {
  const int64_t threads = args.integer(0);
  if (threads < 1 || threads > 1024) throw ArgError("threads must be between 1 and 1024");
  omp_set_num_threads(static_cast<int>(threads));
  startThreadPool();
  return args.undefined();
}

static napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor functions[] = {
      {"info", nullptr, info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, setThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"conv2d", nullptr, conv2d, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"conv2dBackpropInput", nullptr, conv2dBackpropInput, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"conv2dBackpropFilter", nullptr, conv2dBackpropFilter, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matmul", nullptr, matmul, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gradientStep", nullptr, gradientStep, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"maxPool", nullptr, maxPool, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"maxPoolGrad", nullptr, maxPoolGrad, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"binary", nullptr, binary, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"unary", nullptr, unary, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sum", nullptr, sum, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"weightedMean", nullptr, weightedMean, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"firstNonFinite", nullptr, firstNonFinite, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"subtract", nullptr, subtract, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"addScaledInPlace", nullptr, addScaledInPlace, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sgdStepInPlace", nullptr, sgdStepInPlace, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof(functions) / sizeof(functions[0]), functions);
  startThreadPool();
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
