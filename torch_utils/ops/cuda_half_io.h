// Reading and writing float32 / float16 tensor elements in CUDA kernels that compute in float32.
// Included only by .cu files (the functions are __device__).
#pragma once

#include <cstdint>

#include <cuda_fp16.h>

namespace cuda_half_io {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }

}  // namespace cuda_half_io
