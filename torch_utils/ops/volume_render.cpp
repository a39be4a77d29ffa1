// volume_render plugin: torch bindings and the CPU kernels (per-ray math in volume_render.h, CUDA
// kernels in volume_render.cu). Operators: torch.ops.volume_render_plugin.forward / .backward, see
// volume_render.py for their meaning. The CPU kernels run rays in parallel, one scratch area (and, in
// the backward, one set of gradient accumulators) per thread.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#ifdef PSTYLE3D_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "volume_render.h"

using namespace volume_render_kernels;

namespace {

constexpr int64_t kRayGrain = 16;  // rays per parallel task: one ray is already thousands of operations

using Outputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

void check_input(const at::Tensor& t, const at::Tensor& like, std::vector<int64_t> shape, const char* name) {
    TORCH_CHECK(t.sizes() == at::IntArrayRef(shape), "volume_render: ", name, " has shape ", t.sizes(),
                ", expected ", at::IntArrayRef(shape));
    TORCH_CHECK(t.scalar_type() == like.scalar_type() && t.device() == like.device(),
                "volume_render: ", name, " must have the dtype and device of the planes");
    TORCH_CHECK(t.is_contiguous(), "volume_render: ", name, " must be contiguous");
}

// Validates the shapes and fills Params; `fine` is the fine sample count (uniforms or saved depths).
Params make_params(const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                   const at::Tensor& b2, const at::Tensor& origins, const at::Tensor& directions,
                   const at::Tensor& depths_coarse, int64_t fine, at::ArrayRef<double> axes, double box_warp,
                   double noise_strength, bool white_back) {
    TORCH_CHECK(planes.dim() == 5 && planes.size(1) == 3, "volume_render: planes must be (N, 3, H, W, C)");
    TORCH_CHECK(planes.is_contiguous(), "volume_render: planes must be contiguous");
    TORCH_CHECK(axes.size() == 18, "volume_render: axes must hold 3 x 3 x 2 numbers");
    Params p;
    p.channels = (int)planes.size(4);
    p.height = (int)planes.size(2);
    p.width = (int)planes.size(3);
    p.hidden = (int)w1t.size(1);
    p.outputs = (int)w2t.size(1);
    p.rays = origins.size(0);
    p.coarse = (int)depths_coarse.size(1);
    p.fine = (int)fine;
    TORCH_CHECK(p.outputs >= 2, "volume_render: the decoder needs a density and at least one colour output");
    TORCH_CHECK(p.coarse >= 2 && (p.fine == 0 || p.coarse >= 4),
                "volume_render: need >= 2 coarse samples per ray (>= 4 with importance samples)");
    TORCH_CHECK(planes.size(0) > 0 && p.rays % planes.size(0) == 0, "volume_render: rays must be N * R");
    p.rays_per_item = p.rays / planes.size(0);
    check_input(w1t, planes, {p.channels, p.hidden}, "w1t");
    check_input(b1, planes, {p.hidden}, "b1");
    check_input(w2t, planes, {p.hidden, p.outputs}, "w2t");
    check_input(b2, planes, {p.outputs}, "b2");
    check_input(origins, planes, {p.rays, 3}, "origins");
    check_input(directions, planes, {p.rays, 3}, "directions");
    check_input(depths_coarse, planes, {p.rays, p.coarse}, "depths_coarse");
    p.box_scale = (float)(2 / box_warp);
    p.noise_strength = (float)noise_strength;
    p.white_back = white_back ? 1 : 0;
    p.keep_samples = 0;
    for (int q = 0; q < 3; q++)
        for (int k = 0; k < 3; k++)
            for (int a = 0; a < 2; a++) p.axes[q][k][a] = (float)axes[(q * 3 + k) * 2 + a];
    return p;
}

template <typename T> const T* ptr_or_null(const c10::optional<at::Tensor>& t) {
    return t.has_value() ? t->data_ptr<T>() : nullptr;
}

void check_optional(const c10::optional<at::Tensor>& t, const at::Tensor& planes, int64_t rays, int64_t count,
                    const char* name) {
    if (t.has_value()) check_input(*t, planes, {rays, count}, name);
}

template <typename T>
Inputs<T> make_inputs(const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                      const at::Tensor& b2, const at::Tensor& w1, const at::Tensor& w2, const at::Tensor& origins,
                      const at::Tensor& directions, const at::Tensor& depths_coarse,
                      const c10::optional<at::Tensor>& noise_coarse, const c10::optional<at::Tensor>& uniforms,
                      const c10::optional<at::Tensor>& noise_fine, const c10::optional<at::Tensor>& depths_fine) {
    Inputs<T> in;
    in.planes = planes.data_ptr<T>();
    in.w1t = w1t.data_ptr<T>(); in.b1 = b1.data_ptr<T>(); in.w2t = w2t.data_ptr<T>(); in.b2 = b2.data_ptr<T>();
    in.w1 = w1.data_ptr<T>(); in.w2 = w2.data_ptr<T>();
    in.origins = origins.data_ptr<T>(); in.directions = directions.data_ptr<T>();
    in.depths_coarse = depths_coarse.data_ptr<T>();
    in.noise_coarse = ptr_or_null<T>(noise_coarse);
    in.uniforms = ptr_or_null<T>(uniforms);
    in.noise_fine = ptr_or_null<T>(noise_fine);
    in.depths_fine = ptr_or_null<T>(depths_fine);
    return in;
}

// Per-ray inputs that are optional: noise (both passes, when density_noise > 0) and the fine pass's.
void check_pass_inputs(const Params& p, const at::Tensor& planes, const c10::optional<at::Tensor>& noise_coarse,
                       const c10::optional<at::Tensor>& noise_fine, bool has_noise) {
    TORCH_CHECK(noise_coarse.has_value() == has_noise && (p.fine == 0 || noise_fine.has_value() == has_noise),
                "volume_render: density noise must be given for both passes exactly when noise_strength > 0");
    check_optional(noise_coarse, planes, p.rays, p.coarse, "noise_coarse");
    check_optional(noise_fine, planes, p.rays, p.fine, "noise_fine");
}

Outputs empty_outputs(const Params& p, const at::Tensor& planes) {
    auto opts = planes.options();
    return {at::empty({p.rays, p.outputs - 1}, opts), at::empty({p.rays}, opts), at::empty({p.rays}, opts),
            at::empty({p.rays, p.coarse - 1}, opts), at::empty({p.rays, p.fine}, opts)};
}

// Inputs shared by both devices' forward: validated params and tensors.
struct Prepared {
    Params p;
    at::Tensor w1, w2;  // untransposed copies of the decoder weights
};

Prepared prepare(const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                 const at::Tensor& b2, const at::Tensor& origins, const at::Tensor& directions,
                 const at::Tensor& depths_coarse, const c10::optional<at::Tensor>& noise_coarse, int64_t fine,
                 const c10::optional<at::Tensor>& noise_fine, at::ArrayRef<double> axes, double box_warp,
                 double noise_strength, bool white_back, bool keep_samples = false) {
    Prepared r;
    r.p = make_params(planes, w1t, b1, w2t, b2, origins, directions, depths_coarse, fine, axes, box_warp,
                      noise_strength, white_back);
    r.p.keep_samples = keep_samples ? 1 : 0;
    check_pass_inputs(r.p, planes, noise_coarse, noise_fine, noise_strength > 0);
    r.w1 = w1t.t().contiguous();
    r.w2 = w2t.t().contiguous();
    return r;
}

Outputs forward_cpu(const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                    const at::Tensor& b2, const at::Tensor& origins, const at::Tensor& directions,
                    const at::Tensor& depths_coarse, const c10::optional<at::Tensor>& noise_coarse,
                    const c10::optional<at::Tensor>& uniforms, const c10::optional<at::Tensor>& noise_fine,
                    at::ArrayRef<double> axes, double box_warp, double noise_strength, bool white_back) {
    const int64_t fine = uniforms.has_value() ? uniforms->size(1) : 0;
    Prepared r = prepare(planes, w1t, b1, w2t, b2, origins, directions, depths_coarse, noise_coarse, fine, noise_fine,
                         axes, box_warp, noise_strength, white_back);
    const Params& p = r.p;
    check_optional(uniforms, planes, p.rays, p.fine, "uniforms");
    Outputs out = empty_outputs(p, planes);
    auto& [rgb, depth, total, coarse_weights, fine_depths] = out;
    AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "volume_render_forward_cpu", [&] {
        const Inputs<scalar_t> in = make_inputs<scalar_t>(planes, w1t, b1, w2t, b2, r.w1, r.w2, origins, directions,
                                                          depths_coarse, noise_coarse, uniforms, noise_fine, c10::nullopt);
        at::parallel_for(0, p.rays, kRayGrain, [&](int64_t begin, int64_t end) {
            std::vector<scalar_t> scratch(scratch_size(p));
            std::vector<int> order(p.coarse + p.fine);
            Scratch<scalar_t> s(p, scratch.data(), order.data());
            for (int64_t ray = begin; ray < end; ray++)
                forward_ray(p, in, ray, s, rgb.data_ptr<scalar_t>(), depth.data_ptr<scalar_t>(),
                            total.data_ptr<scalar_t>(), coarse_weights.data_ptr<scalar_t>(),
                            fine_depths.data_ptr<scalar_t>());
        });
    });
    return out;
}

// Splits the summed (slots, weight_grad_size) accumulators into the decoder's four gradients.
Outputs decoder_grads(const Params& p, const at::Tensor& planes_grad, const at::Tensor& slot_grads) {
    at::Tensor g = at::sum(slot_grads, {0});
    const int64_t n1 = (int64_t)p.channels * p.hidden, n2 = (int64_t)p.hidden * p.outputs;
    return {planes_grad, g.narrow(0, 0, n1).view({p.channels, p.hidden}), g.narrow(0, n1, p.hidden),
            g.narrow(0, n1 + p.hidden, n2).view({p.hidden, p.outputs}), g.narrow(0, n1 + p.hidden + n2, p.outputs)};
}

Outputs backward_cpu(const at::Tensor& grad_rgb, const at::Tensor& grad_depth, const at::Tensor& grad_total,
                     const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                     const at::Tensor& b2, const at::Tensor& origins, const at::Tensor& directions,
                     const at::Tensor& depths_coarse, const c10::optional<at::Tensor>& noise_coarse,
                     const at::Tensor& depths_fine, const c10::optional<at::Tensor>& noise_fine,
                     at::ArrayRef<double> axes, double box_warp, double noise_strength, bool white_back,
                     bool need_planes_grad, bool keep_samples) {
    Prepared r = prepare(planes, w1t, b1, w2t, b2, origins, directions, depths_coarse, noise_coarse,
                         depths_fine.size(1), noise_fine, axes, box_warp, noise_strength, white_back,
                         keep_samples);
    const Params& p = r.p;
    check_input(depths_fine, planes, {p.rays, p.fine}, "depths_fine");
    check_input(grad_rgb, planes, {p.rays, p.outputs - 1}, "grad_rgb");
    check_input(grad_depth, planes, {p.rays}, "grad_depth");
    check_input(grad_total, planes, {p.rays}, "grad_total");
    // One accumulator set per thread, summed at the end: no two threads ever add into the same memory.
    const int64_t slots = at::get_num_threads();
    at::Tensor slot_weight_grads = at::zeros({slots, weight_grad_size(p)}, planes.options());
    at::Tensor slot_planes_grads = at::zeros({need_planes_grad ? slots : 0, planes.numel()}, planes.options());
    AT_DISPATCH_FLOATING_TYPES(planes.scalar_type(), "volume_render_backward_cpu", [&] {
        const Inputs<scalar_t> in = make_inputs<scalar_t>(planes, w1t, b1, w2t, b2, r.w1, r.w2, origins, directions,
                                                          depths_coarse, noise_coarse, c10::nullopt, noise_fine, depths_fine);
        const scalar_t *g_rgb = grad_rgb.data_ptr<scalar_t>(), *g_depth = grad_depth.data_ptr<scalar_t>();
        const scalar_t* g_total = grad_total.data_ptr<scalar_t>();
        at::parallel_for(0, p.rays, kRayGrain, [&](int64_t begin, int64_t end) {
            const int64_t slot = at::get_thread_num();
            std::vector<scalar_t> scratch(scratch_size(p));
            std::vector<int> order(p.coarse + p.fine);
            Scratch<scalar_t> s(p, scratch.data(), order.data());
            Grads<scalar_t> g(p, slot_weight_grads.data_ptr<scalar_t>() + slot * weight_grad_size(p),
                              need_planes_grad ? slot_planes_grads.data_ptr<scalar_t>() + slot * planes.numel() : nullptr);
            auto add = [](scalar_t* target, scalar_t value) { *target += value; };
            for (int64_t ray = begin; ray < end; ray++)
                backward_ray(p, in, ray, s, g_rgb + ray * (p.outputs - 1), g_depth[ray], g_total[ray], g, add);
        });
    });
    // Without planes gradient: an empty tensor (an operator's Tensor result cannot be None).
    at::Tensor planes_grad = need_planes_grad ? at::sum(slot_planes_grads, {0}).view(planes.sizes()) : at::empty({0}, planes.options());
    return decoder_grads(p, planes_grad, slot_weight_grads);
}

#ifdef PSTYLE3D_WITH_CUDA
constexpr int64_t kMaxSlots = 16384;  // CUDA threads in flight: bounds the scratch memory, not the rays

void check_cuda(int err, const char* what) {
    TORCH_CHECK(err == 0, "volume_render: CUDA launch of ", what, " failed with cudaError ", err);
}

struct CudaScratch {
    int64_t slots;
    at::Tensor values, order;
    CudaScratch(const Params& p, const at::Tensor& planes) {
        slots = std::min<int64_t>(std::max<int64_t>(p.rays, 1), kMaxSlots);
        values = at::empty({slots, scratch_size(p)}, planes.options());
        order = at::empty({slots, p.coarse + p.fine}, planes.options().dtype(at::kInt));
    }
};

Outputs forward_cuda(const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                     const at::Tensor& b2, const at::Tensor& origins, const at::Tensor& directions,
                     const at::Tensor& depths_coarse, const c10::optional<at::Tensor>& noise_coarse,
                     const c10::optional<at::Tensor>& uniforms, const c10::optional<at::Tensor>& noise_fine,
                     at::ArrayRef<double> axes, double box_warp, double noise_strength, bool white_back) {
    c10::cuda::CUDAGuard guard(planes.device());
    TORCH_CHECK(planes.scalar_type() == at::kFloat, "volume_render: the CUDA kernels take float32");
    const int64_t fine = uniforms.has_value() ? uniforms->size(1) : 0;
    Prepared r = prepare(planes, w1t, b1, w2t, b2, origins, directions, depths_coarse, noise_coarse, fine, noise_fine,
                         axes, box_warp, noise_strength, white_back);
    const Params& p = r.p;
    check_optional(uniforms, planes, p.rays, p.fine, "uniforms");
    Outputs out = empty_outputs(p, planes);
    auto& [rgb, depth, total, coarse_weights, fine_depths] = out;
    const Inputs<float> in = make_inputs<float>(planes, w1t, b1, w2t, b2, r.w1, r.w2, origins, directions,
                                                depths_coarse, noise_coarse, uniforms, noise_fine, c10::nullopt);
    CudaScratch scratch(p, planes);
    check_cuda(launch_forward(p, in, scratch.values.data_ptr<float>(), scratch.order.data_ptr<int>(), scratch.slots,
                              rgb.data_ptr<float>(), depth.data_ptr<float>(), total.data_ptr<float>(),
                              coarse_weights.data_ptr<float>(), fine_depths.data_ptr<float>(),
                              c10::cuda::getCurrentCUDAStream().stream()), "forward");
    return out;
}

Outputs backward_cuda(const at::Tensor& grad_rgb, const at::Tensor& grad_depth, const at::Tensor& grad_total,
                      const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                      const at::Tensor& b2, const at::Tensor& origins, const at::Tensor& directions,
                      const at::Tensor& depths_coarse, const c10::optional<at::Tensor>& noise_coarse,
                      const at::Tensor& depths_fine, const c10::optional<at::Tensor>& noise_fine,
                      at::ArrayRef<double> axes, double box_warp, double noise_strength, bool white_back,
                      bool need_planes_grad, bool keep_samples) {
    c10::cuda::CUDAGuard guard(planes.device());
    TORCH_CHECK(planes.scalar_type() == at::kFloat, "volume_render: the CUDA kernels take float32");
    Prepared r = prepare(planes, w1t, b1, w2t, b2, origins, directions, depths_coarse, noise_coarse,
                         depths_fine.size(1), noise_fine, axes, box_warp, noise_strength, white_back,
                         keep_samples);
    const Params& p = r.p;
    check_input(depths_fine, planes, {p.rays, p.fine}, "depths_fine");
    check_input(grad_rgb, planes, {p.rays, p.outputs - 1}, "grad_rgb");
    check_input(grad_depth, planes, {p.rays}, "grad_depth");
    check_input(grad_total, planes, {p.rays}, "grad_total");
    const Inputs<float> in = make_inputs<float>(planes, w1t, b1, w2t, b2, r.w1, r.w2, origins, directions,
                                                depths_coarse, noise_coarse, c10::nullopt, noise_fine, depths_fine);
    CudaScratch scratch(p, planes);
    at::Tensor slot_weight_grads = at::zeros({scratch.slots, weight_grad_size(p)}, planes.options());
    at::Tensor planes_grad = at::zeros(need_planes_grad ? planes.sizes() : at::IntArrayRef({0}), planes.options());
    check_cuda(launch_backward(p, in, scratch.values.data_ptr<float>(), scratch.order.data_ptr<int>(), scratch.slots,
                               grad_rgb.data_ptr<float>(), grad_depth.data_ptr<float>(), grad_total.data_ptr<float>(),
                               slot_weight_grads.data_ptr<float>(),
                               need_planes_grad ? planes_grad.data_ptr<float>() : nullptr,
                               c10::cuda::getCurrentCUDAStream().stream()), "backward");
    return decoder_grads(p, planes_grad, slot_weight_grads);
}
#endif

}  // namespace

TORCH_LIBRARY(volume_render_plugin, m) {
    m.def("forward(Tensor planes, Tensor w1t, Tensor b1, Tensor w2t, Tensor b2, Tensor origins, Tensor directions, "
          "Tensor depths_coarse, Tensor? noise_coarse, Tensor? uniforms, Tensor? noise_fine, float[] axes, "
          "float box_warp, float noise_strength, bool white_back) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
    m.def("backward(Tensor grad_rgb, Tensor grad_depth, Tensor grad_total, Tensor planes, Tensor w1t, Tensor b1, "
          "Tensor w2t, Tensor b2, Tensor origins, Tensor directions, Tensor depths_coarse, Tensor? noise_coarse, "
          "Tensor depths_fine, Tensor? noise_fine, float[] axes, float box_warp, float noise_strength, "
          "bool white_back, bool need_planes_grad, bool keep_samples) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(volume_render_plugin, CPU, m) {
    m.impl("forward", &forward_cpu);
    m.impl("backward", &backward_cpu);
}

#ifdef PSTYLE3D_WITH_CUDA
TORCH_LIBRARY_IMPL(volume_render_plugin, CUDA, m) {
    m.impl("forward", &forward_cuda);
    m.impl("backward", &backward_cuda);
}
#endif
