// filtered_lrelu plugin: torch bindings and the CPU path (CUDA kernels: filtered_lrelu.cu).
// Operators: torch.ops.filtered_lrelu_plugin.forward / .backward, see filtered_lrelu.py.
// On the CPU the two upfirdn2d stages and the pointwise step run plane by plane, so the upsampled
// intermediate stays in the cache instead of going through memory four times.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#ifdef PSTYLE3D_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "filtered_lrelu.h"
#include "upfirdn2d.h"
#include "upfirdn2d_cpu.h"

using namespace filtered_lrelu_kernels;
using upfirdn2d_kernels::Geometry;

namespace {

using upfirdn2d_kernels::Pass;

Geometry checked_geometry(int in_h, int in_w, const at::Tensor& f, int up, int down, int px0, int px1, int py0, int py1) {
    TORCH_CHECK(f.dim() == 1 || f.dim() == 2, "filtered_lrelu: filters must be 1-D (separable) or 2-D");
    TORCH_CHECK(f.scalar_type() == at::kFloat, "filtered_lrelu: filters must be float32");
    const int fw = (int)f.size(-1), fh = (int)f.size(0);
    TORCH_CHECK(in_w * up + px0 + px1 >= fw && in_h * up + py0 + py1 >= fh,
                "filtered_lrelu: the padded image is smaller than the filter");
    return upfirdn2d_kernels::make_geometry(in_h, in_w, fh, fw, up, up, down, down, px0, px1, py0, py1);
}

// A CPU pass with filter f (contiguous float32, on the CPU).
template <typename T> Pass<T> make_pass(const Geometry& g, const at::Tensor& f, bool flip_filter, double gain) {
    return Pass<T>(g, f.contiguous().data_ptr<float>(), f.dim() == 1, flip_filter, gain);
}

// Pass a, pointwise(mid, offset of the plane's first element, count), pass b, for every plane;
// prepare(src, plane index, buffer) may replace the input plane (to add the bias).
template <typename T, typename Prepare, typename Pointwise>
void run_planes(int64_t planes, const T* src, const Pass<T>& a, const Pass<T>& b, T* dst, Prepare prepare,
                Pointwise pointwise) {
    const int64_t in_size = (int64_t)a.g.in_h * a.g.in_w, mid_size = (int64_t)a.g.out_h * a.g.out_w;
    const int64_t out_size = (int64_t)b.g.out_h * b.g.out_w;
    at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
        std::vector<T> input(in_size), mid(mid_size), tmp, buf;
        for (int64_t p = begin; p < end; p++) {
            const T* plane = prepare(src + p * in_size, p, input.data());
            a.run(plane, mid.data(), tmp, buf);
            pointwise(mid.data(), p * mid_size, mid_size);
            b.run(mid.data(), dst + p * out_size, tmp, buf);
        }
    });
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& x_in, const at::Tensor& fu, const at::Tensor& fd,
                                               const c10::optional<at::Tensor>& b_in, int64_t up, int64_t down,
                                               int64_t px0, int64_t px1, int64_t py0, int64_t py1, double gain,
                                               double slope, double clamp, bool flip_filter, bool write_mask) {
    TORCH_CHECK(x_in.dim() == 4, "filtered_lrelu: x must be (N, C, H, W)");
    at::Tensor x = x_in.contiguous();
    const int64_t channels = x.size(1), planes = x.size(0) * x.size(1);
    Geometry ga = checked_geometry((int)x.size(2), (int)x.size(3), fu, (int)up, 1, (int)px0, (int)px1, (int)py0, (int)py1);
    Geometry gb = checked_geometry(ga.out_h, ga.out_w, fd, 1, (int)down, 0, 0, 0, 0);
    at::Tensor b = b_in.has_value() ? b_in->contiguous() : at::Tensor();
    TORCH_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == channels && b.scalar_type() == x.scalar_type()),
                "filtered_lrelu: b must have shape (C,) and the dtype of x");
    at::Tensor y = at::empty({x.size(0), channels, gb.out_h, gb.out_w}, x.options());
    at::Tensor mask = at::empty({write_mask ? x.size(0) : 0, channels, ga.out_h, ga.out_w}, x.options().dtype(at::kByte));
    const Step step{(float)gain, (float)slope, (float)clamp};
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "filtered_lrelu_forward_cpu", [&] {
        const auto pass_a = make_pass<scalar_t>(ga, fu, flip_filter, (double)(up * up));
        const auto pass_b = make_pass<scalar_t>(gb, fd, flip_filter, 1.0);
        const scalar_t* bp = b.defined() ? b.data_ptr<scalar_t>() : nullptr;
        uint8_t* mp = write_mask ? mask.data_ptr<uint8_t>() : nullptr;
        const int64_t in_size = (int64_t)ga.in_h * ga.in_w;
        auto add_bias = [&](const scalar_t* plane, int64_t p, scalar_t* buffer) -> const scalar_t* {
            if (!bp) return plane;
            const scalar_t bias = bp[p % channels];
            for (int64_t i = 0; i < in_size; i++) buffer[i] = plane[i] + bias;
            return buffer;
        };
        auto act = [step, mp](scalar_t* mid, int64_t offset, int64_t n) {
            const Step s = step;  // A local copy: the stores below cannot alias it, so the loops vectorise.
            uint8_t bits;
            if (mp) {
                for (int64_t i = 0; i < n; i++) {
                    mid[i] = activate<scalar_t>(s, mid[i], &bits);
                    mp[offset + i] = bits;
                }
            } else {
                for (int64_t i = 0; i < n; i++) mid[i] = activate<scalar_t>(s, mid[i], &bits);
            }
        };
        run_planes<scalar_t>(planes, x.data_ptr<scalar_t>(), pass_a, pass_b, y.data_ptr<scalar_t>(), add_bias, act);
    });
    return {y, mask};
}

// Geometries of the backward: the adjoints of the fd stage (dy -> mid) and of the fu stage (mid -> dx).
std::pair<Geometry, Geometry> backward_geometry(const at::Tensor& dy, const at::Tensor& mask, const at::Tensor& fu,
                                                const at::Tensor& fd, int up, int down, int px0, int py0, int in_h,
                                                int in_w) {
    const int mid_h = (int)mask.size(2), mid_w = (int)mask.size(3);
    const int out_h = (int)dy.size(2), out_w = (int)dy.size(3);
    const int fdw = (int)fd.size(-1), fdh = (int)fd.size(0), fuw = (int)fu.size(-1), fuh = (int)fu.size(0);
    Geometry ga = checked_geometry(out_h, out_w, fd, down, 1, fdw - 1, mid_w - out_w * down, fdh - 1, mid_h - out_h * down);
    Geometry gb = checked_geometry(mid_h, mid_w, fu, 1, up, fuw - px0 - 1, in_w * up - mid_w + px0 - up + 1, fuh - py0 - 1,
                                in_h * up - mid_h + py0 - up + 1);
    TORCH_CHECK(ga.out_h == mid_h && ga.out_w == mid_w && gb.out_h == in_h && gb.out_w == in_w,
                "filtered_lrelu: dy, mask and the input size do not belong together");
    return {ga, gb};
}

at::Tensor backward_cpu(const at::Tensor& dy_in, const at::Tensor& fu, const at::Tensor& fd, const at::Tensor& mask_in,
                        int64_t up, int64_t down, int64_t px0, int64_t py0, int64_t in_h, int64_t in_w, double gain,
                        double slope, bool flip_filter) {
    at::Tensor dy = dy_in.contiguous(), mask = mask_in.contiguous();
    TORCH_CHECK(dy.dim() == 4 && mask.dim() == 4 && mask.size(0) == dy.size(0) && mask.size(1) == dy.size(1),
                "filtered_lrelu: dy and mask must be (N, C, ., .) of the same N and C");
    auto geometry = backward_geometry(dy, mask, fu, fd, (int)up, (int)down, (int)px0, (int)py0, (int)in_h, (int)in_w);
    at::Tensor dx = at::empty({dy.size(0), dy.size(1), in_h, in_w}, dy.options());
    const Step step{(float)gain, (float)slope, -1.f};
    AT_DISPATCH_FLOATING_TYPES(dy.scalar_type(), "filtered_lrelu_backward_cpu", [&] {
        const auto pass_a = make_pass<scalar_t>(geometry.first, fd, !flip_filter, 1.0);
        const auto pass_b = make_pass<scalar_t>(geometry.second, fu, !flip_filter, (double)(up * up));
        const uint8_t* mp = mask.data_ptr<uint8_t>();
        auto as_is = [](const scalar_t* plane, int64_t, scalar_t*) { return plane; };
        auto chain = [step, mp](scalar_t* mid, int64_t offset, int64_t n) {
            const Step s = step;
            for (int64_t i = 0; i < n; i++) mid[i] *= step_derivative<scalar_t>(s, mp[offset + i]);
        };
        run_planes<scalar_t>(dy.size(0) * dy.size(1), dy.data_ptr<scalar_t>(), pass_a, pass_b, dx.data_ptr<scalar_t>(), as_is,
                             chain);
    });
    return dx;
}

#ifdef PSTYLE3D_WITH_CUDA
// Device taps of one CUDA stage: 2-D in correlation order (separable filters as their outer product).
at::Tensor cuda_taps(const at::Tensor& f_in, const at::Tensor& like, bool flip_filter, double gain) {
    at::Tensor f = f_in.to(like.device());
    if (f.dim() == 1) f = f.unsqueeze(1).mul(f.unsqueeze(0));
    return (flip_filter ? f : f.flip({0, 1})).mul(gain).contiguous();
}

void check_cuda(int err) { TORCH_CHECK(err == 0, "filtered_lrelu: CUDA launch failed with cudaError ", err); }

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& x_in, const at::Tensor& fu, const at::Tensor& fd,
                                                const c10::optional<at::Tensor>& b_in, int64_t up, int64_t down,
                                                int64_t px0, int64_t px1, int64_t py0, int64_t py1, double gain,
                                                double slope, double clamp, bool flip_filter, bool write_mask) {
    c10::cuda::CUDAGuard guard(x_in.device());
    TORCH_CHECK(x_in.dim() == 4, "filtered_lrelu: x must be (N, C, H, W)");
    TORCH_CHECK(x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kHalf,
                "filtered_lrelu: CUDA kernels take float32 or float16");
    at::Tensor x = x_in.contiguous();
    const bool half = x.scalar_type() == at::kHalf;
    const int64_t channels = x.size(1), planes = x.size(0) * x.size(1);
    Geometry ga = checked_geometry((int)x.size(2), (int)x.size(3), fu, (int)up, 1, (int)px0, (int)px1, (int)py0, (int)py1);
    Geometry gb = checked_geometry(ga.out_h, ga.out_w, fd, 1, (int)down, 0, 0, 0, 0);
    at::Tensor ka = cuda_taps(fu, x, flip_filter, (double)(up * up)), kb = cuda_taps(fd, x, flip_filter, 1.0);
    at::Tensor b = b_in.has_value() ? b_in->to(at::kFloat).contiguous() : at::Tensor();
    at::Tensor mid = at::empty({x.size(0), channels, ga.out_h, ga.out_w}, x.options().dtype(at::kFloat));
    at::Tensor mask = at::empty({write_mask ? x.size(0) : 0, channels, ga.out_h, ga.out_w}, x.options().dtype(at::kByte));
    at::Tensor y = at::empty({x.size(0), channels, gb.out_h, gb.out_w}, x.options());
    const Step step{(float)gain, (float)slope, (float)clamp};
    void* stream = c10::cuda::getCurrentCUDAStream().stream();
    check_cuda(launch_stage(ga, planes, channels, x.data_ptr(), half, b.defined() ? b.data_ptr<float>() : nullptr,
                            ka.data_ptr<float>(), mid.data_ptr(), false, kActivate, step,
                            write_mask ? mask.data_ptr<uint8_t>() : nullptr, stream));
    check_cuda(launch_stage(gb, planes, channels, mid.data_ptr(), false, nullptr, kb.data_ptr<float>(), y.data_ptr(), half,
                            kPlain, step, nullptr, stream));
    return {y, mask};
}

at::Tensor backward_cuda(const at::Tensor& dy_in, const at::Tensor& fu, const at::Tensor& fd, const at::Tensor& mask_in,
                         int64_t up, int64_t down, int64_t px0, int64_t py0, int64_t in_h, int64_t in_w, double gain,
                         double slope, bool flip_filter) {
    c10::cuda::CUDAGuard guard(dy_in.device());
    at::Tensor dy = dy_in.contiguous(), mask = mask_in.contiguous();
    const bool half = dy.scalar_type() == at::kHalf;
    auto geometry = backward_geometry(dy, mask, fu, fd, (int)up, (int)down, (int)px0, (int)py0, (int)in_h, (int)in_w);
    Geometry ga = geometry.first, gb = geometry.second;
    at::Tensor ka = cuda_taps(fd, dy, !flip_filter, 1.0), kb = cuda_taps(fu, dy, !flip_filter, (double)(up * up));
    const int64_t planes = dy.size(0) * dy.size(1);
    at::Tensor mid = at::empty({dy.size(0), dy.size(1), ga.out_h, ga.out_w}, dy.options().dtype(at::kFloat));
    at::Tensor dx = at::empty({dy.size(0), dy.size(1), in_h, in_w}, dy.options());
    const Step step{(float)gain, (float)slope, -1.f};
    void* stream = c10::cuda::getCurrentCUDAStream().stream();
    check_cuda(launch_stage(ga, planes, dy.size(1), dy.data_ptr(), half, nullptr, ka.data_ptr<float>(), mid.data_ptr(),
                            false, kMaskGradient, step, mask.data_ptr<uint8_t>(), stream));
    check_cuda(launch_stage(gb, planes, dy.size(1), mid.data_ptr(), false, nullptr, kb.data_ptr<float>(), dx.data_ptr(),
                            half, kPlain, step, nullptr, stream));
    return dx;
}
#endif

}  // namespace

TORCH_LIBRARY(filtered_lrelu_plugin, m) {
    m.def("forward(Tensor x, Tensor fu, Tensor fd, Tensor? b, int up, int down, int px0, int px1, int py0, int py1, "
          "float gain, float slope, float clamp, bool flip_filter, bool write_mask) -> (Tensor, Tensor)");
    m.def("backward(Tensor dy, Tensor fu, Tensor fd, Tensor mask, int up, int down, int px0, int py0, int in_h, "
          "int in_w, float gain, float slope, bool flip_filter) -> Tensor");
}

TORCH_LIBRARY_IMPL(filtered_lrelu_plugin, CPU, m) {
    m.impl("forward", &forward_cpu);
    m.impl("backward", &backward_cpu);
}

#ifdef PSTYLE3D_WITH_CUDA
TORCH_LIBRARY_IMPL(filtered_lrelu_plugin, CUDA, m) {
    m.impl("forward", &forward_cuda);
    m.impl("backward", &backward_cuda);
}
#endif
