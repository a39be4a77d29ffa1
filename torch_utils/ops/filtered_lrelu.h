// filtered_lrelu: the pointwise leaky-ReLU step shared by the CPU and CUDA kernels, and the CUDA
// launchers (filtered_lrelu.cu). No torch headers, so nvcc compiles filtered_lrelu.cu on its own.
//
// The op runs two upfirdn2d stages around a pointwise step, on every (n, c) plane:
//   forward:  mid = upfirdn(x + b, fu, up, padding);  mid = clamp(lrelu(mid) * gain);  y = upfirdn(mid, fd, down)
//   backward: mid = adjoint of the fd stage applied to dy;  mid *= d(step)/d(mid);  dx = adjoint of the fu stage
// The forward records per intermediate element whether it was negative and whether it was clamped
// (one byte), which is all the backward needs from the pointwise step.
#pragma once
#include <cstdint>

#include "upfirdn2d.h"

#ifdef __CUDACC__
#define PS3D_FLRELU_HD __host__ __device__ __forceinline__
#else
#define PS3D_FLRELU_HD inline
#endif

namespace filtered_lrelu_kernels {

constexpr uint8_t kNegative = 1;
constexpr uint8_t kClamped = 2;

struct Step {
    float gain, slope;
    float clamp;  // < 0: no clamping
};

// Leaky ReLU, gain and clamp of one intermediate value; *bits receives kNegative / kClamped.
template <typename T> PS3D_FLRELU_HD T activate(const Step& s, T v, uint8_t* bits) {
    const bool negative = !(v > T(0));  // Matches torch: the slope applies at 0 in the backward.
    v = (negative ? v * T(s.slope) : v) * T(s.gain);
    const T c = T(s.clamp);
    const bool clamped = s.clamp >= 0 && (v > c || v < -c);  // Strictly outside, as torch.clamp's gradient.
    *bits = (negative ? kNegative : 0) | (clamped ? kClamped : 0);
    return clamped ? (v > T(0) ? c : -c) : v;
}

// d(activate)/d(v) recovered from the recorded bits.
template <typename T> PS3D_FLRELU_HD T step_derivative(const Step& s, uint8_t bits) {
    if (bits & kClamped) return T(0);
    return (bits & kNegative) ? T(s.slope) * T(s.gain) : T(s.gain);
}

// Pointwise modes of a CUDA stage.
enum Mode { kPlain = 0, kActivate = 1, kMaskGradient = 2 };

// CUDA launcher (filtered_lrelu.cu): one upfirdn2d stage over `planes` planes (g.in_h x g.in_w ->
// g.out_h x g.out_w) with (g.fh x g.fw) device taps k, adding bias[plane % channels] to the input when
// bias is non-null, then applying `mode` with the mask (written by kActivate unless null, read by
// kMaskGradient).
// `half_in` / `half_out` say whether x / y hold __half instead of float. Returns cudaError_t as int.
int launch_stage(const upfirdn2d_kernels::Geometry& g, int64_t planes, int64_t channels, const void* x, bool half_in,
                 const float* bias, const float* k, void* y, bool half_out, int mode, const Step& step,
                 uint8_t* mask, void* stream);

}  // namespace filtered_lrelu_kernels
