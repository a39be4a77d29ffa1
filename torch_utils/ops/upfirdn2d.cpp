// upfirdn2d plugin: torch bindings and the CPU path (kernels in upfirdn2d_cpu.h; CUDA in upfirdn2d.cu).
// Operator: torch.ops.upfirdn2d_plugin.upfirdn2d, see upfirdn2d.py for its meaning.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>

#ifdef PSTYLE3D_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "upfirdn2d.h"
#include "upfirdn2d_cpu.h"

using namespace upfirdn2d_kernels;

namespace {

Geometry checked_geometry(const at::Tensor& x, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                          int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1) {
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be (N, C, H, W)");
    TORCH_CHECK(f.dim() == 1 || f.dim() == 2, "upfirdn2d: f must be 1-D (separable) or 2-D");
    TORCH_CHECK(f.scalar_type() == at::kFloat, "upfirdn2d: f must be float32");
    TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up and down must be >= 1");
    const int fw = (int)f.size(-1), fh = (int)f.size(0);
    TORCH_CHECK(x.size(3) * upx + padx0 + padx1 >= fw && x.size(2) * upy + pady0 + pady1 >= fh,
                "upfirdn2d: the padded image is smaller than the filter");
    return make_geometry((int)x.size(2), (int)x.size(3), fh, fw, (int)upx, (int)upy, (int)downx, (int)downy,
                         (int)padx0, (int)padx1, (int)pady0, (int)pady1);
}

// A channels-last (NHWC) x, filtered as it is stored into a channels-last y: every output pixel is a
// weighted sum of whole channel vectors.
void upfirdn2d_cpu_channels_last(const Geometry& g, const at::Tensor& x, const at::Tensor& f, bool flip_filter,
                                 double gain, at::Tensor& y) {
    const int64_t channels = x.size(1), rows = x.size(0) * g.out_h;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_cpu_channels_last", [&] {
        const std::vector<scalar_t> k = Pass<scalar_t>(g, f.data_ptr<float>(), f.dim() == 1, flip_filter, gain).taps_2d();
        const scalar_t* xp = x.data_ptr<scalar_t>();
        scalar_t* yp = y.data_ptr<scalar_t>();
        at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
            for (int64_t r = begin; r < end; r++) {
                const int64_t n = r / g.out_h;
                row_channels_last(g, channels, xp + n * g.in_h * g.in_w * channels, k.data(), (int)(r % g.out_h),
                                  yp + r * g.out_w * channels);
            }
        });
    });
}

at::Tensor upfirdn2d_cpu(const at::Tensor& x_in, const at::Tensor& f_in, int64_t upx, int64_t upy, int64_t downx,
                         int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip_filter,
                         double gain) {
    // Channels-last in, channels-last out (the layout CPU inference keeps its activations in).
    const bool channels_last = x_in.dim() == 4 && !x_in.is_contiguous() &&
                               x_in.is_contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor x = channels_last ? x_in : x_in.contiguous(), f = f_in.contiguous();
    Geometry g = checked_geometry(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1);
    at::Tensor y = at::empty({x.size(0), x.size(1), g.out_h, g.out_w},
                             x.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                                                     : at::MemoryFormat::Contiguous));
    if (channels_last) {
        upfirdn2d_cpu_channels_last(g, x, f, flip_filter, gain, y);
        return y;
    }
    const int64_t planes = x.size(0) * x.size(1);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_cpu", [&] {
        const Pass<scalar_t> pass(g, f.data_ptr<float>(), f.dim() == 1, flip_filter, gain);
        const scalar_t* xp = x.data_ptr<scalar_t>();
        scalar_t* yp = y.data_ptr<scalar_t>();
        at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
            std::vector<scalar_t> tmp, buf;
            for (int64_t p = begin; p < end; p++)
                pass.run(xp + p * g.in_h * g.in_w, yp + p * g.out_h * g.out_w, tmp, buf);
        });
    });
    return y;
}

#ifdef PSTYLE3D_WITH_CUDA
// Runs one CUDA pass with a (fh x fw) float32 device tap tensor already in correlation order.
void cuda_pass(const Geometry& g, const at::Tensor& x, const at::Tensor& k, at::Tensor& y) {
    void* stream = c10::cuda::getCurrentCUDAStream().stream();
    const int64_t planes = x.size(0) * x.size(1);
    int err = x.scalar_type() == at::kFloat
                  ? launch_f32(g, planes, x.data_ptr<float>(), k.data_ptr<float>(), y.data_ptr<float>(), stream)
                  : launch_f16(g, planes, x.data_ptr(), k.data_ptr<float>(), y.data_ptr(), stream);
    TORCH_CHECK(err == 0, "upfirdn2d: CUDA launch failed with cudaError ", err);
}

at::Tensor upfirdn2d_cuda(const at::Tensor& x_in, const at::Tensor& f_in, int64_t upx, int64_t upy, int64_t downx,
                          int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, bool flip_filter,
                          double gain) {
    c10::cuda::CUDAGuard guard(x_in.device());
    TORCH_CHECK(x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kHalf,
                "upfirdn2d: CUDA kernels take float32 or float16");
    at::Tensor x = x_in.contiguous(), f = f_in.to(x_in.device());
    Geometry g = checked_geometry(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1);
    at::Tensor y = at::empty({x.size(0), x.size(1), g.out_h, g.out_w}, x.options());
    // Taps in correlation order, computed on the device (no host synchronisation).
    const std::vector<int64_t> dims = f.dim() == 2 ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{0};
    at::Tensor k = flip_filter ? f : f.flip(dims);
    if (f.dim() == 2) {
        cuda_pass(g, x, k.mul(gain).contiguous(), y);
        return y;
    }
    // Separable: a horizontal pass into (N, C, H, out_w), then a vertical pass carrying the gain.
    Geometry gx = g, gy = g;
    gx.out_h = g.in_h, gx.fh = 1, gx.upy = 1, gx.downy = 1, gx.pady0 = 0;
    gy.in_w = g.out_w, gy.fw = 1, gy.upx = 1, gy.downx = 1, gy.padx0 = 0;
    at::Tensor tmp = at::empty({x.size(0), x.size(1), g.in_h, g.out_w}, x.options());
    cuda_pass(gx, x, k.contiguous(), tmp);
    cuda_pass(gy, tmp, k.mul(gain).contiguous(), y);
    return y;
}
#endif

}  // namespace

TORCH_LIBRARY(upfirdn2d_plugin, m) {
    m.def("upfirdn2d(Tensor x, Tensor f, int upx, int upy, int downx, int downy, int padx0, int padx1, int pady0, "
          "int pady1, bool flip_filter, float gain) -> Tensor");
}

TORCH_LIBRARY_IMPL(upfirdn2d_plugin, CPU, m) { m.impl("upfirdn2d", &upfirdn2d_cpu); }

#ifdef PSTYLE3D_WITH_CUDA
TORCH_LIBRARY_IMPL(upfirdn2d_plugin, CUDA, m) { m.impl("upfirdn2d", &upfirdn2d_cuda); }
#endif
