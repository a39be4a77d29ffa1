// bias_act plugin: torch bindings and the CPU kernels (the CUDA kernels live in bias_act.cu).
// Operators: torch.ops.bias_act_plugin.forward / .backward, see bias_act.py for their meaning.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>

#ifdef PSTYLE3D_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "bias_act.h"

using namespace bias_act_kernels;

namespace {

constexpr int64_t kGrain = 1 << 14;  // Elements per parallel task: large enough to amortise scheduling.

// True for a 4-D x stored channels-last (NHWC), with the bias along its channels or no bias: the CPU kernels
// then run on its memory as it is (channels innermost) and return channels-last results, instead of NCHW copies.
bool channels_innermost(const at::Tensor& x, const c10::optional<at::Tensor>& b, int64_t dim) {
    return (!b.has_value() || dim == 1) && x.dim() == 4 && !x.is_contiguous() &&
           x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// x (and the other element-wise operands) as the kernels read them: NCHW-contiguous, or channels-last dense.
at::Tensor dense(const at::Tensor& t, bool channels_last) {
    return t.contiguous(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}

c10::optional<at::Tensor> dense(const c10::optional<at::Tensor>& t, bool channels_last) {
    return t.has_value() ? c10::optional<at::Tensor>(dense(*t, channels_last)) : c10::nullopt;
}

Params make_params(const at::Tensor& x, const c10::optional<at::Tensor>& b, int64_t dim, int64_t act, double alpha,
                   double gain, double clamp, int64_t order, bool channels_last = false) {
    TORCH_CHECK(act >= LINEAR && act <= SWISH, "bias_act: unknown activation index ", act);
    TORCH_CHECK(order == 1 || order == 2, "bias_act: derivative order must be 1 or 2, got ", order);
    Params p;
    p.numel = x.numel();
    p.channels = 1;
    p.inner = std::max<int64_t>(p.numel, 1);
    if (b.has_value()) {
        TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim ", dim, " out of range for a ", x.dim(), "-D tensor");
        TORCH_CHECK(b->dim() == 1 && b->size(0) == x.size(dim), "bias_act: b must have shape (", x.size(dim), ",)");
        TORCH_CHECK(b->scalar_type() == x.scalar_type() && b->device() == x.device(),
                    "bias_act: b must have the dtype and device of x");
        p.channels = x.size(dim);
        p.inner = 1;
        if (!channels_last)  // channels-last memory: the channels are innermost, one bias per element
            for (int64_t i = dim + 1; i < x.dim(); i++) p.inner *= x.size(i);
        p.inner = std::max<int64_t>(p.inner, 1);
    }
    p.act = static_cast<int>(act);
    p.alpha = static_cast<float>(alpha);
    p.gain = static_cast<float>(gain);
    p.clamp = static_cast<float>(clamp);
    p.order = static_cast<int>(order);
    return p;
}

void check_same(const at::Tensor& ref, const at::Tensor& t, const char* name) {
    TORCH_CHECK(t.sizes() == ref.sizes() && t.scalar_type() == ref.scalar_type() && t.device() == ref.device(),
                "bias_act: ", name, " must match x in shape, dtype and device");
}

void check_backward(const at::Tensor& x, const at::Tensor& dy, const c10::optional<at::Tensor>& y, double clamp) {
    TORCH_CHECK(clamp < 0 || y.has_value(), "bias_act: the backward of a clamped bias_act needs its output y");
    check_same(x, dy, "dy");
    if (y.has_value()) check_same(x, *y, "y");
}

// Runs fn(begin, end, channel) over runs of contiguous elements that share one bias value.
template <typename Fn> void for_each_run(const Params& p, Fn fn) {
    at::parallel_for(0, p.numel, kGrain, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end;) {
            int64_t row = i / p.inner;
            int64_t stop = std::min(end, (row + 1) * p.inner);
            fn(i, stop, row % p.channels);
            i = stop;
        }
    });
}

// Runs fn(i0) for every run [i0, i0 + channels) of elements whose channels are 0 .. channels-1 (bias along
// the innermost dimension: channels-last images, or (N, C) rows).
template <typename Fn> void for_each_channel_row(const Params& p, Fn fn) {
    at::parallel_for(0, p.numel / p.channels, std::max<int64_t>(kGrain / p.channels, 1), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++) fn(r * p.channels);
    });
}

// The activation and "clamp or not" are template arguments and the parameters plain locals, so that
// the per-element branches fold away and the loops vectorise.
template <typename T, int A, bool Clamp> void forward_loop(const Params& p, const T* x, const T* b, T* y) {
    const T alpha = T(p.alpha), gain = T(p.gain), clamp = Clamp ? T(p.clamp) : T(-1);
    if (p.inner == 1 && p.channels > 1) {
        const int64_t channels = p.channels;
        for_each_channel_row(p, [=](int64_t i0) {
            for (int64_t c = 0; c < channels; c++) y[i0 + c] = forward_value<T>(A, x[i0 + c] + b[c], alpha, gain, clamp);
        });
        return;
    }
    for_each_run(p, [=](int64_t i0, int64_t i1, int64_t c) {
        const T bias = b ? b[c] : T(0);
        for (int64_t i = i0; i < i1; i++) y[i] = forward_value<T>(A, x[i] + bias, alpha, gain, clamp);
    });
}

template <typename T, int A, bool Clamp>
void backward_loop(const Params& p, const T* dy, const T* x, const T* b, const T* y, T* dx) {
    const T alpha = T(p.alpha), gain = T(p.gain), clamp = Clamp ? T(p.clamp) : T(-1);
    const int order = p.order;
    if (p.inner == 1 && p.channels > 1) {
        const int64_t channels = p.channels;
        for_each_channel_row(p, [=](int64_t i0) {
            for (int64_t c = 0; c < channels; c++) {
                const int64_t i = i0 + c;
                dx[i] = backward_value<T>(A, order, dy[i], x[i] + b[c], Clamp ? y[i] : T(0), alpha, gain, clamp);
            }
        });
        return;
    }
    for_each_run(p, [=](int64_t i0, int64_t i1, int64_t c) {
        const T bias = b ? b[c] : T(0);
        for (int64_t i = i0; i < i1; i++)
            dx[i] = backward_value<T>(A, order, dy[i], x[i] + bias, Clamp ? y[i] : T(0), alpha, gain, clamp);
    });
}

template <typename Clamp, typename Loop> void dispatch_act_as(int act, Clamp clamp, Loop loop) {
    switch (act) {
        case LINEAR: loop(std::integral_constant<int, LINEAR>(), clamp); break;
        case RELU: loop(std::integral_constant<int, RELU>(), clamp); break;
        case LRELU: loop(std::integral_constant<int, LRELU>(), clamp); break;
        case TANH: loop(std::integral_constant<int, TANH>(), clamp); break;
        case SIGMOID: loop(std::integral_constant<int, SIGMOID>(), clamp); break;
        case ELU: loop(std::integral_constant<int, ELU>(), clamp); break;
        case SELU: loop(std::integral_constant<int, SELU>(), clamp); break;
        case SOFTPLUS: loop(std::integral_constant<int, SOFTPLUS>(), clamp); break;
        default: loop(std::integral_constant<int, SWISH>(), clamp); break;
    }
}

// Calls loop(act, clamp) with both as compile-time constants.
template <typename Loop> void dispatch_act(int act, bool clamp, Loop loop) {
    if (clamp) dispatch_act_as(act, std::true_type(), loop);
    else dispatch_act_as(act, std::false_type(), loop);
}

template <typename T> const T* data_or_null(const c10::optional<at::Tensor>& t) {
    return t.has_value() ? t->data_ptr<T>() : nullptr;
}

// y = bias_act(x) into y, which may be x itself (the in-place operator).
void forward_cpu_into(const at::Tensor& x, const c10::optional<at::Tensor>& b, const Params& p, at::Tensor& y) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_act_forward_cpu", [&] {
        dispatch_act(p.act, p.clamp >= 0, [&](auto a, auto clamp) {
            forward_loop<scalar_t, decltype(a)::value, decltype(clamp)::value>(p, x.data_ptr<scalar_t>(), data_or_null<scalar_t>(b),
                                                      y.data_ptr<scalar_t>());
        });
    });
}

at::Tensor forward_cpu(const at::Tensor& x_in, const c10::optional<at::Tensor>& b_in, int64_t dim, int64_t act,
                       double alpha, double gain, double clamp) {
    const bool channels_last = channels_innermost(x_in, b_in, dim);
    at::Tensor x = dense(x_in, channels_last);
    c10::optional<at::Tensor> b = dense(b_in, false);
    Params p = make_params(x, b, dim, act, alpha, gain, clamp, 1, channels_last);
    at::Tensor y = at::empty_like(x);  // keeps x's memory format
    forward_cpu_into(x, b, p, y);
    return y;
}

// bias_act written into x, for inference on a tensor the caller owns (NCHW- or channels-last-dense).
void forward_inplace_cpu(at::Tensor x, const c10::optional<at::Tensor>& b_in, int64_t dim, int64_t act, double alpha,
                         double gain, double clamp) {
    const bool channels_last = channels_innermost(x, b_in, dim);
    TORCH_CHECK(x.is_contiguous() || channels_last, "bias_act: the in-place operator needs a dense x");
    c10::optional<at::Tensor> b = dense(b_in, false);
    Params p = make_params(x, b, dim, act, alpha, gain, clamp, 1, channels_last);
    forward_cpu_into(x, b, p, x);
}

at::Tensor backward_cpu(const at::Tensor& dy_in, const at::Tensor& x_in, const c10::optional<at::Tensor>& b_in,
                        const c10::optional<at::Tensor>& y_in, int64_t dim, int64_t act, double alpha, double gain,
                        double clamp, int64_t order) {
    const bool channels_last = channels_innermost(x_in, b_in, dim);
    at::Tensor x = dense(x_in, channels_last), dy = dense(dy_in, channels_last);
    c10::optional<at::Tensor> b = dense(b_in, false), y = dense(y_in, channels_last);
    Params p = make_params(x, b, dim, act, alpha, gain, clamp, order, channels_last);
    check_backward(x, dy, y, clamp);
    at::Tensor dx = at::empty_like(x);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_act_backward_cpu", [&] {
        dispatch_act(p.act, p.clamp >= 0, [&](auto a, auto clamp) {
            backward_loop<scalar_t, decltype(a)::value, decltype(clamp)::value>(p, dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                                       data_or_null<scalar_t>(b), data_or_null<scalar_t>(y),
                                                       dx.data_ptr<scalar_t>());
        });
    });
    return dx;
}

#ifdef PSTYLE3D_WITH_CUDA
void check_cuda(int err, const char* what) {
    TORCH_CHECK(err == 0, "bias_act: CUDA launch of ", what, " failed with cudaError ", err);
}

at::Tensor forward_cuda(const at::Tensor& x_in, const c10::optional<at::Tensor>& b_in, int64_t dim, int64_t act,
                        double alpha, double gain, double clamp) {
    c10::cuda::CUDAGuard guard(x_in.device());
    at::Tensor x = x_in.contiguous();
    c10::optional<at::Tensor> b = dense(b_in, false);
    Params p = make_params(x, b, dim, act, alpha, gain, clamp, 1);
    at::Tensor y = at::empty_like(x);
    void* stream = c10::cuda::getCurrentCUDAStream().stream();
    const void* bp = b.has_value() ? b->data_ptr() : nullptr;
    if (x.scalar_type() == at::kFloat) {
        check_cuda(launch_forward_f32(p, x.data_ptr<float>(), static_cast<const float*>(bp), y.data_ptr<float>(), stream),
                   "forward");
    } else {
        TORCH_CHECK(x.scalar_type() == at::kHalf, "bias_act: CUDA kernels take float32 or float16");
        check_cuda(launch_forward_f16(p, x.data_ptr(), bp, y.data_ptr(), stream), "forward");
    }
    return y;
}

at::Tensor backward_cuda(const at::Tensor& dy_in, const at::Tensor& x_in, const c10::optional<at::Tensor>& b_in,
                         const c10::optional<at::Tensor>& y_in, int64_t dim, int64_t act, double alpha, double gain,
                         double clamp, int64_t order) {
    c10::cuda::CUDAGuard guard(x_in.device());
    at::Tensor x = x_in.contiguous(), dy = dy_in.contiguous();
    c10::optional<at::Tensor> b = dense(b_in, false), y = dense(y_in, false);
    Params p = make_params(x, b, dim, act, alpha, gain, clamp, order);
    check_backward(x, dy, y, clamp);
    at::Tensor dx = at::empty_like(x);
    void* stream = c10::cuda::getCurrentCUDAStream().stream();
    const void* bp = b.has_value() ? b->data_ptr() : nullptr;
    const void* yp = y.has_value() ? y->data_ptr() : nullptr;
    if (x.scalar_type() == at::kFloat) {
        check_cuda(launch_backward_f32(p, dy.data_ptr<float>(), x.data_ptr<float>(), static_cast<const float*>(bp),
                                       static_cast<const float*>(yp), dx.data_ptr<float>(), stream), "backward");
    } else {
        TORCH_CHECK(x.scalar_type() == at::kHalf, "bias_act: CUDA kernels take float32 or float16");
        check_cuda(launch_backward_f16(p, dy.data_ptr(), x.data_ptr(), bp, yp, dx.data_ptr(), stream), "backward");
    }
    return dx;
}
#endif

}  // namespace

TORCH_LIBRARY(bias_act_plugin, m) {
    m.def("forward(Tensor x, Tensor? b, int dim, int act, float alpha, float gain, float clamp) -> Tensor");
    m.def("backward(Tensor dy, Tensor x, Tensor? b, Tensor? y, int dim, int act, float alpha, float gain, "
          "float clamp, int order) -> Tensor");
    m.def("forward_inplace(Tensor(a!) x, Tensor? b, int dim, int act, float alpha, float gain, float clamp) -> ()");
}

TORCH_LIBRARY_IMPL(bias_act_plugin, CPU, m) {
    m.impl("forward", &forward_cpu);
    m.impl("backward", &backward_cpu);
    m.impl("forward_inplace", &forward_inplace_cpu);
}

#ifdef PSTYLE3D_WITH_CUDA
TORCH_LIBRARY_IMPL(bias_act_plugin, CUDA, m) {
    m.impl("forward", &forward_cuda);
    m.impl("backward", &backward_cuda);
}
#endif
