// The one oneDNN CPU engine and stream the addon uses. oneDNN runs on the calling thread plus its OpenMP
// team, so every kernel returns with its output written (stream.wait() is a no-op on CPU but kept for form).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

dnnl::engine& cpuEngine();
dnnl::stream& cpuStream();
