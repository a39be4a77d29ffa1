// volume_render plugin: torch bindings and the CPU kernels (per-ray passes in volume_render.h, CPU only,
// see volume_render.py for why). Operators: torch.ops.volume_render_plugin.forward / .backward, see
// volume_render.py for their meaning. The kernels run rays in parallel, one scratch area (and, in the
// backward, one set of gradient accumulators) per thread.
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

#include "volume_render.h"

using namespace volume_render_kernels;

namespace {

constexpr int64_t kRayGrain = 16;  // rays per parallel task: one ray is already thousands of operations

using Outputs = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using OptionalTensor = c10::optional<at::Tensor>;

// The operators' tensor inputs (w1, w2: the decoder weights untransposed, made here).
struct Tensors {
    at::Tensor planes, w1t, b1, w2t, b2, w1, w2, origins, directions, depths_coarse;
    OptionalTensor noise_coarse, uniforms, noise_fine, depths_fine;
};

void check_input(const at::Tensor& t, const at::Tensor& like, std::vector<int64_t> shape, const char* name) {
    TORCH_CHECK(t.sizes() == at::IntArrayRef(shape), "volume_render: ", name, " has shape ", t.sizes(),
                ", expected ", at::IntArrayRef(shape));
    TORCH_CHECK(t.scalar_type() == like.scalar_type() && t.device() == like.device(),
                "volume_render: ", name, " must have the dtype and device of the planes");
    TORCH_CHECK(t.is_contiguous(), "volume_render: ", name, " must be contiguous");
}

void check_optional(const OptionalTensor& t, const at::Tensor& planes, int64_t rays, int64_t count, const char* name) {
    if (t.has_value()) check_input(*t, planes, {rays, count}, name);
}

// Validates the inputs and fills Params; `fine` is the fine sample count (uniforms or saved depths);
// `for_backward` sizes the scratch to keep every sample's decoder state, as backward_ray needs.
Params make_params(const Tensors& t, int64_t fine, at::ArrayRef<double> axes, double box_warp, double noise_strength,
                   bool white_back, bool for_backward) {
    const at::Tensor& planes = t.planes;
    TORCH_CHECK(planes.dim() == 5 && planes.size(1) == 3, "volume_render: planes must be (N, 3, H, W, C)");
    TORCH_CHECK(planes.is_contiguous(), "volume_render: planes must be contiguous");
    TORCH_CHECK(axes.size() == 18, "volume_render: axes must hold 3 x 3 x 2 numbers");
    Params p;
    p.channels = (int)planes.size(4);
    p.height = (int)planes.size(2);
    p.width = (int)planes.size(3);
    p.hidden = (int)t.w1t.size(1);
    p.outputs = (int)t.w2t.size(1);
    p.rays = t.origins.size(0);
    p.coarse = (int)t.depths_coarse.size(1);
    p.fine = (int)fine;
    TORCH_CHECK(p.outputs >= 2, "volume_render: the decoder needs a density and at least one colour output");
    TORCH_CHECK(p.coarse >= 2 && (p.fine == 0 || p.coarse >= 4),
                "volume_render: need >= 2 coarse samples per ray (>= 4 with importance samples)");
    TORCH_CHECK(planes.size(0) > 0 && p.rays % planes.size(0) == 0, "volume_render: rays must be N * R");
    p.rays_per_item = p.rays / planes.size(0);
    check_input(t.w1t, planes, {p.channels, p.hidden}, "w1t");
    check_input(t.b1, planes, {p.hidden}, "b1");
    check_input(t.w2t, planes, {p.hidden, p.outputs}, "w2t");
    check_input(t.b2, planes, {p.outputs}, "b2");
    check_input(t.origins, planes, {p.rays, 3}, "origins");
    check_input(t.directions, planes, {p.rays, 3}, "directions");
    check_input(t.depths_coarse, planes, {p.rays, p.coarse}, "depths_coarse");
    TORCH_CHECK(t.noise_coarse.has_value() == (noise_strength > 0) &&
                (p.fine == 0 || t.noise_fine.has_value() == (noise_strength > 0)),
                "volume_render: density noise must be given for both passes exactly when noise_strength > 0");
    check_optional(t.noise_coarse, planes, p.rays, p.coarse, "noise_coarse");
    check_optional(t.noise_fine, planes, p.rays, p.fine, "noise_fine");
    check_optional(t.uniforms, planes, p.rays, p.fine, "uniforms");
    check_optional(t.depths_fine, planes, p.rays, p.fine, "depths_fine");
    p.box_scale = (float)(2 / box_warp);
    p.noise_strength = (float)noise_strength;
    p.white_back = white_back ? 1 : 0;
    p.keep_samples = for_backward ? 1 : 0;
    for (int q = 0; q < 3; q++)
        for (int k = 0; k < 3; k++)
            for (int a = 0; a < 2; a++) p.axes[q][k][a] = (float)axes[(q * 3 + k) * 2 + a];
    return p;
}

template <typename T> const T* ptr_or_null(const OptionalTensor& t) { return t.has_value() ? t->data_ptr<T>() : nullptr; }

template <typename T> Inputs<T> make_inputs(const Tensors& t) {
    Inputs<T> in;
    in.planes = t.planes.data_ptr<T>();
    in.w1t = t.w1t.data_ptr<T>(); in.b1 = t.b1.data_ptr<T>(); in.w2t = t.w2t.data_ptr<T>(); in.b2 = t.b2.data_ptr<T>();
    in.w1 = t.w1.data_ptr<T>(); in.w2 = t.w2.data_ptr<T>();
    in.origins = t.origins.data_ptr<T>(); in.directions = t.directions.data_ptr<T>();
    in.depths_coarse = t.depths_coarse.data_ptr<T>();
    in.noise_coarse = ptr_or_null<T>(t.noise_coarse);
    in.uniforms = ptr_or_null<T>(t.uniforms);
    in.noise_fine = ptr_or_null<T>(t.noise_fine);
    in.depths_fine = ptr_or_null<T>(t.depths_fine);
    return in;
}

// Gradient outputs: the planes' (an empty tensor when not needed: an operator's Tensor result cannot be
// None) and the decoder's four, from the per-slot (slots, weight_grad_size) accumulators.
Outputs gradients(const Params& p, const at::Tensor& planes_grad, const at::Tensor& slot_grads) {
    at::Tensor g = at::sum(slot_grads, {0});
    const int64_t n1 = (int64_t)p.channels * p.hidden, n2 = (int64_t)p.hidden * p.outputs;
    return {planes_grad, g.narrow(0, 0, n1).view({p.channels, p.hidden}), g.narrow(0, n1, p.hidden),
            g.narrow(0, n1 + p.hidden, n2).view({p.hidden, p.outputs}), g.narrow(0, n1 + p.hidden + n2, p.outputs)};
}

void forward_cpu(const Params& p, const Tensors& t, Outputs& out) {
    auto& [rgb, depth, total, coarse_weights, fine_depths] = out;
    AT_DISPATCH_FLOATING_TYPES(t.planes.scalar_type(), "volume_render_forward_cpu", [&] {
        const Inputs<scalar_t> in = make_inputs<scalar_t>(t);
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
}

// The rays are split into one contiguous block per torch thread, each block with its own accumulator
// set, summed at the end: no two blocks ever add into the same memory, and the block (not the runtime's
// thread index, which another OpenMP runtime could number differently) picks the accumulator.
Outputs backward_cpu(const Params& p, const Tensors& t, const at::Tensor& grad_rgb, const at::Tensor& grad_depth,
                     const at::Tensor& grad_total, bool need_planes_grad) {
    const int64_t slots = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), (p.rays + kRayGrain - 1) / kRayGrain));
    const int64_t planes_numel = t.planes.numel();
    at::Tensor slot_weight_grads = at::zeros({slots, weight_grad_size(p)}, t.planes.options());
    at::Tensor slot_planes_grads = at::zeros({need_planes_grad ? slots : 0, planes_numel}, t.planes.options());
    AT_DISPATCH_FLOATING_TYPES(t.planes.scalar_type(), "volume_render_backward_cpu", [&] {
        const Inputs<scalar_t> in = make_inputs<scalar_t>(t);
        const scalar_t *g_rgb = grad_rgb.data_ptr<scalar_t>(), *g_depth = grad_depth.data_ptr<scalar_t>();
        const scalar_t* g_total = grad_total.data_ptr<scalar_t>();
        at::parallel_for(0, slots, 1, [&](int64_t first_slot, int64_t last_slot) {
            std::vector<scalar_t> scratch(scratch_size(p));
            std::vector<int> order(p.coarse + p.fine);
            Scratch<scalar_t> s(p, scratch.data(), order.data());
            for (int64_t slot = first_slot; slot < last_slot; slot++) {
                Grads<scalar_t> g(p, slot_weight_grads.data_ptr<scalar_t>() + slot * weight_grad_size(p),
                                  need_planes_grad ? slot_planes_grads.data_ptr<scalar_t>() + slot * planes_numel
                                                   : nullptr);
                for (int64_t ray = slot * p.rays / slots; ray < (slot + 1) * p.rays / slots; ray++)
                    backward_ray(p, in, ray, s, g_rgb + ray * (p.outputs - 1), g_depth[ray], g_total[ray], g);
            }
        });
    });
    at::Tensor planes_grad = need_planes_grad ? at::sum(slot_planes_grads, {0}).view(t.planes.sizes())
                                              : at::empty({0}, t.planes.options());
    return gradients(p, planes_grad, slot_weight_grads);
}

Outputs forward(const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                const at::Tensor& b2, const at::Tensor& origins, const at::Tensor& directions,
                const at::Tensor& depths_coarse, const OptionalTensor& noise_coarse, const OptionalTensor& uniforms,
                const OptionalTensor& noise_fine, at::ArrayRef<double> axes, double box_warp, double noise_strength,
                bool white_back) {
    const Tensors t{planes, w1t, b1, w2t, b2, w1t.t().contiguous(), w2t.t().contiguous(), origins, directions,
                    depths_coarse, noise_coarse, uniforms, noise_fine, c10::nullopt};
    const Params p = make_params(t, uniforms.has_value() ? uniforms->size(1) : 0, axes, box_warp, noise_strength,
                                 white_back, /*for_backward=*/false);
    auto opts = planes.options();
    Outputs out{at::empty({p.rays, p.outputs - 1}, opts), at::empty({p.rays}, opts), at::empty({p.rays}, opts),
                at::empty({p.rays, p.coarse - 1}, opts), at::empty({p.rays, p.fine}, opts)};
    forward_cpu(p, t, out);
    return out;
}

Outputs backward(const at::Tensor& grad_rgb, const at::Tensor& grad_depth, const at::Tensor& grad_total,
                 const at::Tensor& planes, const at::Tensor& w1t, const at::Tensor& b1, const at::Tensor& w2t,
                 const at::Tensor& b2, const at::Tensor& origins, const at::Tensor& directions,
                 const at::Tensor& depths_coarse, const OptionalTensor& noise_coarse, const at::Tensor& depths_fine,
                 const OptionalTensor& noise_fine, at::ArrayRef<double> axes, double box_warp, double noise_strength,
                 bool white_back, bool need_planes_grad) {
    const Tensors t{planes, w1t, b1, w2t, b2, w1t.t().contiguous(), w2t.t().contiguous(), origins, directions,
                    depths_coarse, noise_coarse, c10::nullopt, noise_fine, depths_fine};
    const Params p = make_params(t, depths_fine.size(1), axes, box_warp, noise_strength, white_back, /*for_backward=*/true);
    check_input(grad_rgb, planes, {p.rays, p.outputs - 1}, "grad_rgb");
    check_input(grad_depth, planes, {p.rays}, "grad_depth");
    check_input(grad_total, planes, {p.rays}, "grad_total");
    return backward_cpu(p, t, grad_rgb, grad_depth, grad_total, need_planes_grad);
}

}  // namespace

TORCH_LIBRARY(volume_render_plugin, m) {
    m.def("forward(Tensor planes, Tensor w1t, Tensor b1, Tensor w2t, Tensor b2, Tensor origins, Tensor directions, "
          "Tensor depths_coarse, Tensor? noise_coarse, Tensor? uniforms, Tensor? noise_fine, float[] axes, "
          "float box_warp, float noise_strength, bool white_back) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
    m.def("backward(Tensor grad_rgb, Tensor grad_depth, Tensor grad_total, Tensor planes, Tensor w1t, Tensor b1, "
          "Tensor w2t, Tensor b2, Tensor origins, Tensor directions, Tensor depths_coarse, Tensor? noise_coarse, "
          "Tensor depths_fine, Tensor? noise_fine, float[] axes, float box_warp, float noise_strength, "
          "bool white_back, bool need_planes_grad) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(volume_render_plugin, CPU, m) {
    m.impl("forward", &forward);
    m.impl("backward", &backward);
}
