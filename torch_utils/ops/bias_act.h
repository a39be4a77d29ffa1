// Fused bias + activation + gain + clamp: the activation math shared by the CPU and CUDA kernels,
// and the CUDA launchers (implemented in bias_act.cu). Includes no torch headers, so nvcc can
// compile bias_act.cu on its own.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define PS3D_HD __host__ __device__ __forceinline__
#else
#define PS3D_HD inline __attribute__((always_inline))
#endif

namespace bias_act_kernels {

using std::exp;  // float overloads on the host; CUDA provides them in device code.
using std::log1p;
using std::tanh;

// Activation numbers: bias_act.py's activation_funcs[...].cuda_idx.
enum Act { LINEAR = 1, RELU = 2, LRELU = 3, TANH = 4, SIGMOID = 5, ELU = 6, SELU = 7, SOFTPLUS = 8, SWISH = 9 };

struct Params {
    int64_t numel;     // elements of x
    int64_t inner;     // product of x's sizes after `dim` (elements that share one bias value in a row)
    int64_t channels;  // x.shape[dim] (1 without bias)
    int act;
    float alpha;       // lrelu slope
    float gain;
    float clamp;       // < 0: no clamping
    int order;         // backward: 1 = first derivative, 2 = second derivative
};

// SELU's constants, as torch.nn.functional.selu.
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;

template <typename T> PS3D_HD T sigmoid(T x) { return T(1) / (T(1) + exp(-x)); }

// act(x)
template <typename T> PS3D_HD T act_value(int act, T x, T alpha) {
    switch (act) {
        case RELU: return x > T(0) ? x : T(0);
        case LRELU: return x > T(0) ? x : x * alpha;
        case TANH: return tanh(x);
        case SIGMOID: return sigmoid(x);
        case ELU: return x > T(0) ? x : exp(x) - T(1);
        case SELU: return x > T(0) ? T(kSeluScale) * x : T(kSeluScale * kSeluAlpha) * (exp(x) - T(1));
        case SOFTPLUS: return x > T(20) ? x : log1p(exp(x));  // torch's default threshold of 20.
        case SWISH: return x * sigmoid(x);
        default: return x;
    }
}

// act'(x) (order 1) or act''(x) (order 2).
template <typename T> PS3D_HD T act_derivative(int act, int order, T x, T alpha) {
    if (order == 1) {
        switch (act) {
            case RELU: return x > T(0) ? T(1) : T(0);
            case LRELU: return x > T(0) ? T(1) : alpha;
            case TANH: { T y = tanh(x); return T(1) - y * y; }
            case SIGMOID: { T s = sigmoid(x); return s * (T(1) - s); }
            case ELU: return x > T(0) ? T(1) : exp(x);
            case SELU: return x > T(0) ? T(kSeluScale) : T(kSeluScale * kSeluAlpha) * exp(x);
            case SOFTPLUS: return x > T(20) ? T(1) : sigmoid(x);
            case SWISH: { T s = sigmoid(x); return s * (T(1) + x * (T(1) - s)); }
            default: return T(1);
        }
    }
    switch (act) {
        case TANH: { T y = tanh(x); return T(-2) * y * (T(1) - y * y); }
        case SIGMOID: case SOFTPLUS: {
            if (act == SOFTPLUS && x > T(20)) return T(0);
            T s = sigmoid(x);
            return s * (T(1) - s) * (act == SIGMOID ? T(1) - T(2) * s : T(1));
        }
        case ELU: return x > T(0) ? T(0) : exp(x);
        case SELU: return x > T(0) ? T(0) : T(kSeluScale * kSeluAlpha) * exp(x);
        case SWISH: { T s = sigmoid(x); return s * (T(1) - s) * (T(2) + x * (T(1) - T(2) * s)); }
        default: return T(0);
    }
}

// Forward value of one element: clamp(act(x + b) * gain); clamp < 0 means none.
template <typename T> PS3D_HD T forward_value(int act, T x, T alpha, T gain, T clamp) {
    T y = act_value<T>(act, x, alpha) * gain;
    if (clamp >= T(0))
        y = y < -clamp ? -clamp : (y > clamp ? clamp : y);  // Comparisons keep NaN as NaN, as torch.clamp does.
    return y;
}

// Backward value of one element: dy * gain * act^(order)(x + b), zero where the forward output y was clamped.
template <typename T> PS3D_HD T backward_value(int act, int order, T dy, T x, T y, T alpha, T gain, T clamp) {
    T d = dy * gain * act_derivative<T>(act, order, x, alpha);
    if (clamp >= T(0))
        d = (y < clamp && y > -clamp) ? d : T(0);  // |y| == clamp marks a clamped element.
    return d;
}

// CUDA launchers (bias_act.cu). T is float, double or __half (passed as the raw 16-bit type).
// b may be null; y must be non-null when p.clamp >= 0. Return cudaError_t as int.
int launch_forward_f32(const Params& p, const float* x, const float* b, float* y, void* stream);
int launch_forward_f16(const Params& p, const void* x, const void* b, void* y, void* stream);
int launch_backward_f32(const Params& p, const float* dy, const float* x, const float* b, const float* y,
                        float* dx, void* stream);
int launch_backward_f16(const Params& p, const void* dy, const void* x, const void* b, const void* y,
                        void* dx, void* stream);

}  // namespace bias_act_kernels
