// Argument parsing for the addon's Node-API functions.
//
// Every exported function is synchronous and works on Float32Arrays owned by JavaScript: the kernels read
// and write them in place, so nothing is copied across the boundary. A bad argument throws ArgError, which
// the NAPI_EXPORT wrapper turns into a JavaScript exception (never a crash).
#pragma once

#include <node_api.h>
#include <pthread.h>
#include <signal.h>

#include <cstdint>
#include <stdexcept>
#include <string>

struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline const char* typedArrayKind(napi_typedarray_type type) {
  switch (type) {
    case napi_float32_array:
      return "a Float32Array";
    case napi_float64_array:
      return "a Float64Array";
    case napi_int32_array:
      return "an Int32Array";
    default:
      return "a typed array";
  }
}

// The data of a typed array of the expected type, its length in elements going to *length; `what` names it in
// the error. An empty typed array may have no backing store: a valid pointer is handed out anyway.
inline void* typedArrayData(napi_env env, napi_value value, napi_typedarray_type expected, const std::string& what,
                            size_t* length) {
  bool isTyped = false;
  napi_is_typedarray(env, value, &isTyped);
  napi_typedarray_type type = napi_int8_array;
  size_t elements = 0;
  void* data = nullptr;
  if (isTyped) napi_get_typedarray_info(env, value, &type, &elements, &data, nullptr, nullptr);
  if (!isTyped || type != expected) throw ArgError(what + " must be " + typedArrayKind(expected));
  if (length != nullptr) *length = elements;
  static double empty = 0.0;
  return data == nullptr ? &empty : data;
}

class Args {
 public:
  Args(napi_env env, napi_callback_info info) : env_(env) {
    size_t count = kMax;
    if (napi_get_cb_info(env, info, &count, argv_, nullptr, nullptr) != napi_ok) throw ArgError("cannot read arguments");
    count_ = count;
  }

  napi_env env() const { return env_; }

  // A Float32Array argument; its length in elements goes to *length when asked.
  float* f32(size_t index, size_t* length = nullptr) const {
    float* data = f32OrNull(index, length);
    if (data == nullptr) throw ArgError(name(index) + " must be a Float32Array");
    return data;
  }

  // A Float32Array, or nullptr for null/undefined (optional operands such as a bias).
  float* f32OrNull(size_t index, size_t* length = nullptr) const {
    napi_value value = at(index);
    napi_valuetype type;
    napi_typeof(env_, value, &type);
    if (type == napi_null || type == napi_undefined) {
      if (length != nullptr) *length = 0;
      return nullptr;
    }
    return static_cast<float*>(typedArrayData(env_, value, napi_float32_array, name(index), length));
  }

  // An Int32Array of geometry values (conv and pool dimensions), checked for its length.
  const int32_t* i32s(size_t index, size_t expected) const {
    size_t elements = 0;
    const void* data = typedArrayData(env_, at(index), napi_int32_array, name(index), &elements);
    if (elements != expected) {
      throw ArgError(name(index) + " must be an Int32Array of length " + std::to_string(expected));
    }
    return static_cast<const int32_t*>(data);
  }

  int64_t integer(size_t index) const {
    int64_t result = 0;
    if (napi_get_value_int64(env_, at(index), &result) != napi_ok) throw ArgError(name(index) + " must be a number");
    return result;
  }

  double number(size_t index) const {
    double result = 0;
    if (napi_get_value_double(env_, at(index), &result) != napi_ok) throw ArgError(name(index) + " must be a number");
    return result;
  }

  bool flag(size_t index) const {
    bool result = false;
    if (napi_get_value_bool(env_, at(index), &result) != napi_ok) throw ArgError(name(index) + " must be a boolean");
    return result;
  }

  napi_value undefined() const {
    napi_value result;
    napi_get_undefined(env_, &result);
    return result;
  }

 private:
  static constexpr size_t kMax = 16;

  napi_value at(size_t index) const {
    if (index >= count_) throw ArgError(name(index) + " is missing");
    return argv_[index];
  }

  static std::string name(size_t index) { return "argument " + std::to_string(index); }

  napi_env env_;
  napi_value argv_[kMax];
  size_t count_ = 0;
};

// Holds back asynchronous signals while oneDNN runs. oneDNN 2.6's JIT sgemm kernels point rsp into the
// heap, so a signal handled during one (SIGCHLD, a profiler's SIGPROF, Node's own SIGINT handler) writes
// its frame over heap memory and corrupts it (oneDNN issue #4845, fixed upstream only in 2026). Blocked
// signals stay pending and are delivered when the call returns. Used around every oneDNN call (sgemm and
// convolutions, which may run on the same gemm) but not around the addon's own loops: the two syscalls
// cost about 1-4 us here. OpenMP's threads are started under this mask too (startThreadPool), so they
// never take a process-directed signal. Faults (SIGSEGV and friends) stay unblocked: V8 handles them.
class SignalBlock {
 public:
  SignalBlock() {
    sigset_t all;
    sigfillset(&all);
    for (int fault : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT}) sigdelset(&all, fault);
    pthread_sigmask(SIG_BLOCK, &all, &saved_);
  }
  ~SignalBlock() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalBlock(const SignalBlock&) = delete;
  SignalBlock& operator=(const SignalBlock&) = delete;

 private:
  sigset_t saved_;
};

// Defines `napi_value name(napi_env, napi_callback_info)` around `napi_value name##Impl(const Args&)`,
// turning any C++ exception (bad argument, oneDNN error) into a thrown JavaScript Error.
#define NAPI_EXPORT(name)                                              \
  static napi_value name##Impl(const Args& args);                      \
  napi_value name(napi_env env, napi_callback_info info) {             \
    try {                                                              \
      Args args(env, info);                                            \
      return name##Impl(args);                                         \
    } catch (const std::exception& err) {                              \
      napi_throw_error(env, nullptr, (std::string(#name ": ") + err.what()).c_str()); \
      return nullptr;                                                  \
    }                                                                  \
  }                                                                    \
  static napi_value name##Impl(const Args& args)

// Loops below this many elements run on one thread. They are memory-bound, so a second thread gains
// little, and every parallel region waits for all its threads: on a busy machine, where a thread may wait
// a whole time slice for a core, small regions made 2-thread training several times slower than 1.
constexpr int64_t kParallelThreshold = 1 << 20;

// Hot loops are built twice, for AVX2 and baseline x86-64, and picked when the addon loads: the binary stays
// portable (no -march=native) yet uses AVX2 where the CPU has it.
#define FEDSIM_MULTIVERSION __attribute__((target_clones("avx2", "default")))
