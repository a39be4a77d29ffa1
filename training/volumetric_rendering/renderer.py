"""Tri-plane volume renderer (EG3D's ImportanceRenderer): stratified + importance samples along each
ray, features from three axis-aligned feature planes, an MLP decoder, alpha compositing.

Beyond EG3D: rays are rendered in chunks (`ray_chunk_size`, DEFAULT_RAY_CHUNK_SIZE unless the caller
chooses; 0 renders all rays at once, as EG3D) so that the per-sample tensors, the bulk of the memory,
stay bounded whatever the resolution. All random numbers are drawn up front for the whole batch, in
EG3D's order, so a chunked render equals an unchunked one up to float rounding (< 1e-5).

With EG3D's OSGDecoder and planes on the CPU, the samples of each ray are decoded and composited by
the fused compiled op torch_utils.ops.volume_render (C++, no per-sample tensors) when its plugin builds;
the pure-PyTorch path below is its reference and runs on GPUs (the op is CPU-only), for other
decoders, when the plugin is missing, and with the rendering option `impl='ref'` (needed for
higher-order gradients through a render).
"""

from typing import Callable, Dict, Optional, Tuple

import torch

from torch_utils import misc
from torch_utils.ops import volume_render
from torch_utils.ops.volume_render import DecoderWeights
from training.volumetric_rendering import math_utils
from training.volumetric_rendering.ray_marcher import MipRayMarcher2, clamp_composite_depth

# Rays per chunk when neither the call nor rendering_options chooses: at FFHQ-512's 48 + 48 samples
# per ray the per-sample working set of a 2048-ray chunk is about 0.1 GB, below what the
# super-resolution network needs afterwards, so rendering does not set the peak.
DEFAULT_RAY_CHUNK_SIZE = 2048


def generate_planes() -> torch.Tensor:
    """The three planes' axes (3, 3, 3), exactly as EG3D defines them.

    The third matrix is EG3D's (its rows give a plane that repeats the x axis of the second one,
    NVlabs/eg3d issue 67); it is kept because official checkpoints were trained with it.
    """
    return torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                         [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
                         [[0, 0, 1], [1, 0, 0], [0, 1, 0]]], dtype=torch.float32)


def project_onto_planes(planes: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
    """2-D coordinates of points in each plane: planes (P, 3, 3), coordinates (N, M, 3) -> (N*P, M, 2)."""
    N, M, _ = coordinates.shape
    n_planes = planes.shape[0]
    coordinates = coordinates.unsqueeze(1).expand(-1, n_planes, -1, -1).reshape(N * n_planes, M, 3)
    inv_planes = torch.linalg.inv(planes).to(coordinates.dtype)
    inv_planes = inv_planes.unsqueeze(0).expand(N, -1, -1, -1).reshape(N * n_planes, 3, 3)
    return torch.bmm(coordinates, inv_planes)[..., :2]


def sample_from_planes(plane_axes: torch.Tensor, plane_features: torch.Tensor, coordinates: torch.Tensor,
                       mode: str = 'bilinear', padding_mode: str = 'zeros', box_warp: float = None) -> torch.Tensor:
    """Bilinear features of points: plane_features (N, P, C, H, W), coordinates (N, M, 3) -> (N, P, M, C).

    The cube [-box_warp/2, box_warp/2]^3 maps onto the planes' [-1, 1] extent; outside it features are 0.
    """
    if padding_mode != 'zeros':
        raise ValueError(f"sample_from_planes supports only padding_mode='zeros', got {padding_mode!r}")
    N, n_planes, C, H, W = plane_features.shape
    M = coordinates.shape[1]
    plane_features = plane_features.reshape(N * n_planes, C, H, W)
    coordinates = (2 / box_warp) * coordinates
    projected = project_onto_planes(plane_axes, coordinates).unsqueeze(1)  # [N*P, 1, M, 2]
    # The grid takes the planes' dtype (float32 for every EG3D network; float64 in gradient checks).
    features = torch.nn.functional.grid_sample(plane_features, projected.to(plane_features.dtype), mode=mode,
                                               padding_mode=padding_mode, align_corners=False)
    return features.permute(0, 3, 2, 1).reshape(N, n_planes, M, C)


class ImportanceRenderer(torch.nn.Module):
    """Renders tri-planes along rays. `rendering_options` are EG3D's `rendering_kwargs`
    (ray_start/ray_end floats or both 'auto', depth_resolution, depth_resolution_importance,
    disparity_space_sampling, box_warp, clamp_mode, optional density_noise, white_back) plus our
    optional `ray_chunk_size` (rays per chunk; 0 = all at once; absent = DEFAULT_RAY_CHUNK_SIZE) and
    `impl` ('cuda', the default: the fused compiled op where it applies, i.e. for float32/float64 CPU
    tensors and EG3D's OSGDecoder; 'ref': pure PyTorch, which also supports higher-order gradients,
    e.g. create_graph=True through a render)."""

    def __init__(self):
        super().__init__()
        self.ray_marcher = MipRayMarcher2()
        self.plane_axes = generate_planes()

    def forward(self, planes: torch.Tensor, decoder: Callable, ray_origins: torch.Tensor,
                ray_directions: torch.Tensor, rendering_options: dict, ray_chunk_size: Optional[int] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """planes (N, 3, C, H, W); ray_origins, ray_directions (N, R, 3).

        Returns features (N, R, C_out), depth (N, R, 1) and total compositing weight (N, R, 1).
        `ray_chunk_size` (rays per chunk, 0 = all rays at once) overrides `rendering_options['ray_chunk_size']`;
        when neither gives one, DEFAULT_RAY_CHUNK_SIZE bounds the memory.
        """
        misc.assert_shape(ray_origins, [None, None, 3], 'ray_origins')
        misc.assert_shape(ray_directions, list(ray_origins.shape), 'ray_directions')
        misc.assert_shape(planes, [ray_origins.shape[0], 3, None, None, None], 'planes')
        if ray_chunk_size is None:
            ray_chunk_size = rendering_options.get('ray_chunk_size', None)
        if ray_chunk_size is None:
            ray_chunk_size = DEFAULT_RAY_CHUNK_SIZE
        if not isinstance(ray_chunk_size, int) or isinstance(ray_chunk_size, bool) or ray_chunk_size < 0:
            raise ValueError(f'ray_chunk_size must be an int >= 0 (0 = all rays at once) or None, '
                             f'got {ray_chunk_size!r}')
        self.plane_axes = self.plane_axes.to(ray_origins.device)
        N, R, _ = ray_origins.shape
        n_importance = rendering_options['depth_resolution_importance']
        fused = self._fused_inputs(planes, decoder, rendering_options)

        # Every random number of the call, drawn in EG3D's order for the whole batch; chunks slice them.
        depths_coarse = self._stratified_depths(ray_origins, ray_directions, rendering_options)
        noise = self._density_noise_like(depths_coarse, rendering_options)
        uniforms = fine_noise = None
        if n_importance > 0:
            uniforms = torch.rand(N * R, n_importance, device=ray_origins.device).reshape(N, R, n_importance)
            fine_noise = self._density_noise_like(uniforms[..., None], rendering_options)

        chunk = ray_chunk_size or R
        rgbs, depths, weight_sums = [], [], []
        depth_min = depth_max = None
        for start in range(0, R, chunk):
            rays = slice(start, start + chunk)
            chunk_inputs = (_slice(ray_origins, rays), _slice(ray_directions, rays), _slice(depths_coarse, rays),
                            _slice(noise, rays), _slice(uniforms, rays), _slice(fine_noise, rays), rendering_options)
            if fused is None:
                rgb, depth, weight_sum, all_depths = self._render_rays(planes, decoder, *chunk_inputs)
            else:
                rgb, depth, weight_sum, all_depths = self._render_rays_fused(*fused, *chunk_inputs)
            rgbs.append(rgb)
            depths.append(depth)
            weight_sums.append(weight_sum)
            lo, hi = torch.min(all_depths), torch.max(all_depths)
            depth_min = lo if depth_min is None else torch.minimum(depth_min, lo)
            depth_max = hi if depth_max is None else torch.maximum(depth_max, hi)
        # EG3D clamps the depth to the range of all samples of the batch, so clamp after the last chunk.
        depth = clamp_composite_depth(torch.cat(depths, 1), depth_min, depth_max)
        return torch.cat(rgbs, 1), depth, torch.cat(weight_sums, 1)

    def _render_rays(self, planes, decoder, ray_origins, ray_directions, depths_coarse, noise, uniforms,
                     fine_noise, options):
        """Coarse pass, importance pass and compositing for one chunk of rays (N, r, ...): composite
        features (N, r, C), unclamped depth and weight sum (N, r, 1), all sample depths (N, r, S, 1)."""
        colors_coarse, densities_coarse = self._run_samples(planes, decoder, ray_origins, ray_directions,
                                                            depths_coarse, noise, options)
        n_importance = options['depth_resolution_importance']
        if n_importance > 0:
            _, _, weights = self.ray_marcher(colors_coarse, densities_coarse, depths_coarse, options, clamp_depth=False)
            depths_fine = self.sample_importance(depths_coarse, weights, n_importance, uniforms=uniforms)
            colors_fine, densities_fine = self._run_samples(planes, decoder, ray_origins, ray_directions,
                                                            depths_fine, fine_noise, options)
            all_depths, all_colors, all_densities = self.unify_samples(
                depths_coarse, colors_coarse, densities_coarse, depths_fine, colors_fine, densities_fine)
        else:
            all_depths, all_colors, all_densities = depths_coarse, colors_coarse, densities_coarse
        rgb, depth, weights = self.ray_marcher(all_colors, all_densities, all_depths, options, clamp_depth=False)
        return rgb, depth, weights.sum(2), all_depths

    def _fused_inputs(self, planes, decoder, options):
        """(channels-last planes, DecoderWeights) when the fused op renders this call, else None."""
        impl = options.get('impl', 'cuda')
        if impl not in ('ref', 'cuda'):
            raise ValueError(f"rendering option impl must be 'ref' or 'cuda', got {impl!r}")
        weights = osg_decoder_weights(decoder)
        usable = (impl == 'cuda' and weights is not None and options['clamp_mode'] == 'softplus'
                  and options['depth_resolution'] >= 4 and volume_render.is_available(planes))
        if not usable:
            return None
        return volume_render.planes_channels_last(planes), DecoderWeights(*(w.to(planes.dtype) for w in weights))

    def _render_rays_fused(self, planes_cl, weights, ray_origins, ray_directions, depths_coarse, noise, uniforms,
                           fine_noise, options):
        """`_render_rays` with the fused op: planes_cl and weights from `_fused_inputs`."""
        out = volume_render.render_rays(planes_cl, weights, self.plane_axes, ray_origins, ray_directions, depths_coarse,
                                        options['box_warp'], noise_coarse=noise, uniforms=uniforms,
                                        noise_fine=fine_noise, density_noise=options.get('density_noise', 0),
                                        white_back=options.get('white_back', False))
        return out.rgb, out.depth, out.weight_sum, torch.cat([depths_coarse, out.depths_fine], -2)

    def _run_samples(self, planes, decoder, ray_origins, ray_directions, depths, noise, options):
        """Decode the points at `depths` (N, r, S, 1) along the rays: colours (N, r, S, C), densities (N, r, S, 1)."""
        N, r, S, _ = depths.shape
        coordinates = (ray_origins.unsqueeze(-2) + depths * ray_directions.unsqueeze(-2)).reshape(N, -1, 3)
        directions = ray_directions.unsqueeze(-2).expand(-1, -1, S, -1).reshape(N, -1, 3)
        out = self.run_model(planes, decoder, coordinates, directions, options,
                             density_noise=None if noise is None else noise.reshape(N, r * S, 1))
        return out['rgb'].reshape(N, r, S, -1), out['sigma'].reshape(N, r, S, 1)

    def run_model(self, planes: torch.Tensor, decoder: Callable, sample_coordinates: torch.Tensor,
                  sample_directions: torch.Tensor, options: dict,
                  density_noise: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Decoder outputs at points: planes (N, 3, C, H, W), coordinates and directions (N, M, 3).

        Returns {'rgb': (N, M, C_out), 'sigma': (N, M, 1)}. With options['density_noise'] > 0 a
        standard normal sample times it is added to sigma (drawn here unless `density_noise`
        passes a pre-drawn (N, M, 1) standard normal sample).
        """
        misc.assert_shape(sample_coordinates, [planes.shape[0], None, 3], 'sample_coordinates')
        misc.assert_shape(sample_directions, list(sample_coordinates.shape), 'sample_directions')
        self.plane_axes = self.plane_axes.to(planes.device)
        features = sample_from_planes(self.plane_axes, planes, sample_coordinates, padding_mode='zeros',
                                      box_warp=options['box_warp'])
        out = decoder(features, sample_directions)
        strength = options.get('density_noise', 0)
        if strength > 0:
            if density_noise is None:
                density_noise = torch.randn_like(out['sigma'])
            out['sigma'] = out['sigma'] + density_noise * strength
        return out

    @staticmethod
    def _density_noise_like(depths: torch.Tensor, options: dict) -> Optional[torch.Tensor]:
        """The standard normal sample (N, R, S, 1) that EG3D's run_model adds to the densities of the
        samples at `depths` (N, R, S, 1), or None when density noise is off."""
        if options.get('density_noise', 0) > 0:
            return torch.randn_like(depths)
        return None

    def _stratified_depths(self, ray_origins, ray_directions, options) -> torch.Tensor:
        """Jittered depths (N, R, depth_resolution, 1), with 'auto' limits from the box_warp cube."""
        if options['ray_start'] == options['ray_end'] == 'auto':
            ray_start, ray_end = math_utils.get_ray_limits_box(ray_origins, ray_directions,
                                                               box_side_length=options['box_warp'])
            is_ray_valid = ray_end > ray_start
            if torch.any(is_ray_valid).item():
                # EG3D's fill-in for rays that miss the cube (both ends from ray_start, as EG3D does).
                ray_start[~is_ray_valid] = ray_start[is_ray_valid].min()
                ray_end[~is_ray_valid] = ray_start[is_ray_valid].max()
        else:
            ray_start, ray_end = options['ray_start'], options['ray_end']
        return self.sample_stratified(ray_origins, ray_start, ray_end, options['depth_resolution'],
                                      options['disparity_space_sampling'])

    def sample_stratified(self, ray_origins: torch.Tensor, ray_start, ray_end, depth_resolution: int,
                          disparity_space_sampling: bool = False) -> torch.Tensor:
        """Evenly spaced depths (N, R, depth_resolution, 1) between ray_start and ray_end (floats or
        (N, R, 1) tensors), each jittered forward by up to one spacing (one `rand_like` draw);
        with `disparity_space_sampling` the spacing is even in inverse depth."""
        N, R, _ = ray_origins.shape
        if isinstance(ray_start, torch.Tensor):
            ray_start, ray_end = ray_start[..., None, :], ray_end[..., None, :]  # [N, R, 1, 1]
        if disparity_space_sampling:
            steps = torch.linspace(0, 1, depth_resolution, device=ray_origins.device)
            steps = steps.reshape(1, 1, depth_resolution, 1).repeat(N, R, 1, 1)
            steps = steps + torch.rand_like(steps) * (1 / (depth_resolution - 1))
            return 1. / (1. / ray_start * (1. - steps) + 1. / ray_end * steps)
        if isinstance(ray_start, torch.Tensor):
            depths = math_utils.linspace(ray_start[..., 0, :], ray_end[..., 0, :], depth_resolution).permute(1, 2, 0, 3)
        else:
            depths = torch.linspace(ray_start, ray_end, depth_resolution, device=ray_origins.device)
            depths = depths.reshape(1, 1, depth_resolution, 1).repeat(N, R, 1, 1)
        depth_delta = (ray_end - ray_start) / (depth_resolution - 1)
        return depths + torch.rand_like(depths) * depth_delta

    def sample_importance(self, z_vals: torch.Tensor, weights: torch.Tensor, N_importance: int,
                          uniforms: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Depths (N, R, N_importance, 1) drawn from the coarse weights (N, R, S-1, 1), NeRF-style.

        `uniforms` (N, R, N_importance) are the pre-drawn uniforms; None draws them here.
        """
        with torch.no_grad():
            batch_size, num_rays, samples_per_ray, _ = z_vals.shape
            z_vals = z_vals.reshape(batch_size * num_rays, samples_per_ray)
            weights = weights.reshape(batch_size * num_rays, -1)
            # Smooth the weights (max then mean over neighbours) and keep every interval reachable.
            weights = torch.nn.functional.max_pool1d(weights.unsqueeze(1).float(), 2, 1, padding=1)
            weights = torch.nn.functional.avg_pool1d(weights, 2, 1).squeeze(1)
            weights = weights + 0.01
            z_vals_mid = 0.5 * (z_vals[:, :-1] + z_vals[:, 1:])
            if uniforms is not None:
                uniforms = uniforms.reshape(batch_size * num_rays, N_importance)
            samples = self.sample_pdf(z_vals_mid, weights[:, 1:-1], N_importance, uniforms=uniforms)
            return samples.detach().reshape(batch_size, num_rays, N_importance, 1)

    def sample_pdf(self, bins: torch.Tensor, weights: torch.Tensor, N_importance: int, det: bool = False,
                   eps: float = 1e-5, uniforms: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Inverse-CDF samples (R, N_importance) from the piecewise-constant pdf `weights` (R, B)
        over bin edges `bins` (R, B+1). `det` uses evenly spaced quantiles instead of uniforms."""
        N_rays, n_bins = weights.shape
        weights = weights + eps
        pdf = weights / torch.sum(weights, -1, keepdim=True)
        cdf = torch.cumsum(pdf, -1)
        cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)  # [R, B+1], from 0 to 1
        if det:
            u = torch.linspace(0, 1, N_importance, device=bins.device).expand(N_rays, N_importance)
        elif uniforms is None:
            u = torch.rand(N_rays, N_importance, device=bins.device)
        else:
            u = uniforms
        u = u.contiguous()

        inds = torch.searchsorted(cdf, u, right=True)
        below = torch.clamp_min(inds - 1, 0)
        above = torch.clamp_max(inds, n_bins)
        inds_sampled = torch.stack([below, above], -1).view(N_rays, 2 * N_importance)
        cdf_g = torch.gather(cdf, 1, inds_sampled).view(N_rays, N_importance, 2)
        bins_g = torch.gather(bins, 1, inds_sampled).view(N_rays, N_importance, 2)

        denom = cdf_g[..., 1] - cdf_g[..., 0]
        # A zero-width cdf step is a bin with no weight: it is never selected, any denominator will do.
        denom = torch.where(denom < eps, torch.ones_like(denom), denom)
        return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])

    def unify_samples(self, depths1, colors1, densities1, depths2, colors2, densities2):
        """Merge two sample sets (N, R, S_i, .) into one sorted by depth (N, R, S_1+S_2, .)."""
        all_depths = torch.cat([depths1, depths2], dim=-2)
        all_colors = torch.cat([colors1, colors2], dim=-2)
        all_densities = torch.cat([densities1, densities2], dim=-2)
        _, indices = torch.sort(all_depths, dim=-2)
        all_depths = torch.gather(all_depths, -2, indices)
        all_colors = torch.gather(all_colors, -2, indices.expand(-1, -1, -1, all_colors.shape[-1]))
        all_densities = torch.gather(all_densities, -2, indices.expand(-1, -1, -1, 1))
        return all_depths, all_colors, all_densities


def osg_decoder_weights(decoder: Callable) -> Optional[DecoderWeights]:
    """The weights the fused op needs, from a decoder that offers them (`fused_weights()`, as EG3D's
    OSGDecoder does: mean over the planes, FC -> softplus -> FC, widened sigmoid); None for any other."""
    fused_weights = getattr(decoder, 'fused_weights', None)
    return None if fused_weights is None else fused_weights()


def _slice(tensor: Optional[torch.Tensor], rays: slice) -> Optional[torch.Tensor]:
    """Rays `rays` of a (N, R, ...) tensor, contiguous: strided inputs take other CPU kernels whose
    rounding differs, and chunked results must be identical to unchunked ones."""
    return None if tensor is None else tensor[:, rays].contiguous()
