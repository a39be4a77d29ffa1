"""Fused tri-plane volume rendering: for each ray, the bilinear tri-plane features of its samples,
EG3D's OSGDecoder MLP, MipRayMarcher2 compositing and the importance (fine) pass, in one compiled C++
kernel that keeps a ray's samples in a small per-thread scratch area instead of (N, rays * samples, C)
tensors.

CPU only: on a GPU, one thread per ray is far slower than the renderer's batched PyTorch path, so CUDA
tensors always take that path.

The reference is the pure-PyTorch ImportanceRenderer in training/volumetric_rendering/renderer.py,
which chooses this op (rendering option `impl`, like the other ops' `impl` argument) and passes it the
random numbers it draws, so both give the same result up to float rounding. Gradients: first order for
the planes and the decoder weights (the backward is compiled too and recomputes each ray's forward
instead of keeping intermediates). Higher-order gradients (create_graph=True through a render) are not
supported: render those with impl='ref'.
"""

import os
from typing import NamedTuple, Optional

import torch
from torch.autograd.function import once_differentiable

from torch_utils import custom_ops


class DecoderWeights(NamedTuple):
    """OSGDecoder's two layers with their gains applied: w1 (hidden, C), b1 (hidden,), w2 (1 + C_out, hidden),
    b2 (1 + C_out,); output 0 is the raw density, the others colour features."""
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor


class RenderedRays(NamedTuple):
    """What `render_rays` returns for (N, R) rays with S1 coarse and S2 fine samples each."""
    rgb: torch.Tensor             # (N, R, C_out) composited features, scaled to [-1, 1] as MipRayMarcher2 does
    depth: torch.Tensor           # (N, R, 1) composited depth, NaN where the weights sum to 0 (not clamped)
    weight_sum: torch.Tensor      # (N, R, 1) total compositing weight
    coarse_weights: torch.Tensor  # (N, R, S1 - 1, 1) the coarse pass's compositing weights
    depths_fine: torch.Tensor     # (N, R, S2, 1) importance samples drawn from them


def _plugin():
    return custom_ops.get_plugin('volume_render_plugin', os.path.dirname(__file__), cpp_sources=['volume_render.cpp'],
                                 cuda_sources=[], headers=['volume_render.h', 'volume_render_math.h'])


def is_available(planes: torch.Tensor) -> bool:
    """True if planes are a float32 or float64 CPU tensor and the plugin builds (it has CPU kernels only)."""
    return custom_ops.handles(_plugin(), planes)


def planes_channels_last(planes: torch.Tensor) -> torch.Tensor:
    """(N, 3, C, H, W) tri-planes -> (N, 3, H, W, C), the layout the kernels read (one tap = C adjacent values);
    convert once per render, not per chunk of rays."""
    return planes.permute(0, 1, 3, 4, 2).contiguous()


def render_rays(planes_cl: torch.Tensor, decoder: DecoderWeights, plane_axes: torch.Tensor, ray_origins: torch.Tensor,
                ray_directions: torch.Tensor, depths_coarse: torch.Tensor, box_warp: float,
                noise_coarse: Optional[torch.Tensor] = None, uniforms: Optional[torch.Tensor] = None,
                noise_fine: Optional[torch.Tensor] = None, density_noise: float = 0,
                white_back: bool = False) -> RenderedRays:
    """Render rays through tri-planes with the compiled kernels (check `is_available` first).

    Args:
        planes_cl: (N, 3, H, W, C) tri-planes from `planes_channels_last`.
        decoder: the decoder's weights (DecoderWeights).
        plane_axes: (3, 3, 3) the planes' axes (renderer.generate_planes()).
        ray_origins, ray_directions: (N, R, 3).
        depths_coarse: (N, R, S1, 1) stratified depths, sorted along each ray.
        box_warp: side of the cube that maps onto the planes' [-1, 1] extent.
        noise_coarse, noise_fine: (N, R, S1, 1) / (N, R, S2, 1) standard normal samples added to the raw
            densities times `density_noise`; both None when density_noise is 0.
        uniforms: (N, R, S2) uniforms in [0, 1) for the importance samples; None = no fine pass.
        white_back: composite onto white instead of black.
    Returns:
        RenderedRays.
    """
    N, R, S1, _ = depths_coarse.shape
    dtype = planes_cl.dtype

    def per_ray(t: Optional[torch.Tensor], count: int) -> Optional[torch.Tensor]:
        return None if t is None else t.to(dtype).reshape(N * R, count).contiguous()

    S2 = 0 if uniforms is None else uniforms.shape[-1]
    axes = torch.linalg.inv(plane_axes.double())[:, :, :2].flatten().tolist()
    constants = (per_ray(ray_origins, 3), per_ray(ray_directions, 3), per_ray(depths_coarse, S1),
                 per_ray(noise_coarse, S1), per_ray(noise_fine, S2), axes, float(box_warp), float(density_noise),
                 bool(white_back))
    rgb, depth, weight_sum, coarse_weights, depths_fine = _VolumeRender.apply(
        planes_cl, decoder.w1.t().contiguous(), decoder.b1.contiguous(), decoder.w2.t().contiguous(),
        decoder.b2.contiguous(), per_ray(uniforms, S2), constants)
    return RenderedRays(rgb.reshape(N, R, -1), depth.reshape(N, R, 1), weight_sum.reshape(N, R, 1),
                        coarse_weights.reshape(N, R, S1 - 1, 1), depths_fine.reshape(N, R, S2, 1))


class _VolumeRender(torch.autograd.Function):
    """Compiled forward; compiled first-order backward that re-renders each ray (once differentiable)."""

    @staticmethod
    def forward(ctx, planes_cl, w1t, b1, w2t, b2, uniforms, constants):
        origins, directions, depths_coarse, noise_coarse, noise_fine, axes, box_warp, strength, white_back = constants
        rgb, depth, weight_sum, coarse_weights, depths_fine = _plugin().ops.forward(
            planes_cl, w1t, b1, w2t, b2, origins, directions, depths_coarse, noise_coarse, uniforms, noise_fine, axes,
            box_warp, strength, white_back)
        ctx.save_for_backward(planes_cl, w1t, b1, w2t, b2, depths_fine)
        ctx.constants = constants
        ctx.mark_non_differentiable(coarse_weights, depths_fine)
        return rgb, depth, weight_sum, coarse_weights, depths_fine

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rgb, grad_depth, grad_total, _grad_coarse_weights, _grad_depths_fine):
        planes_cl, w1t, b1, w2t, b2, depths_fine = ctx.saved_tensors
        (origins, directions, depths_coarse, noise_coarse, noise_fine, axes, box_warp, strength,
         white_back) = ctx.constants
        grads = [g.contiguous() if g is not None else torch.zeros(shape, dtype=planes_cl.dtype, device=planes_cl.device)
                 for g, shape in ((grad_rgb, (origins.shape[0], w2t.shape[1] - 1)), (grad_depth, origins.shape[:1]),
                                  (grad_total, origins.shape[:1]))]
        d_planes, d_w1t, d_b1, d_w2t, d_b2 = _plugin().ops.backward(
            *grads, planes_cl, w1t, b1, w2t, b2, origins, directions, depths_coarse, noise_coarse, depths_fine,
            noise_fine, axes, box_warp, strength, white_back, ctx.needs_input_grad[0])
        return d_planes if ctx.needs_input_grad[0] else None, d_w1t, d_b1, d_w2t, d_b2, None, None
