"""EG3D's tri-plane generator: a StyleGAN2 backbone paints three 32-channel feature planes, a small
MLP decodes features sampled from them into colour features and density, the volume renderer
produces a low-resolution feature image and depth, and a super-resolution module the final image.
"""

from typing import Dict, Optional

import torch

import dnnlib
from camera_utils import CAMERA_LABEL_DIM, check_camera_label
from torch_utils import misc
from torch_utils import persistence
from torch_utils.ops.volume_render import DecoderWeights
from training.dam_layers import check_alpha
from training.domain_adaptation import DomainInput, DomainInputMixin, backbone_dam_kwargs, superresolution_dam_kwargs
from training.layers import FullyConnectedLayer
from training.networks_stylegan2 import Generator as StyleGAN2Backbone
from training.volumetric_rendering.ray_sampler import RaySampler
from training.volumetric_rendering.renderer import ImportanceRenderer

PLANE_CHANNELS = 32  # features per plane; the backbone outputs 3 * 32 channels
REQUIRED_RENDERING_KWARGS = ('superresolution_module', 'sr_antialias', 'c_gen_conditioning_zero',
                             'superresolution_noise_mode', 'ray_start', 'ray_end', 'depth_resolution',
                             'depth_resolution_importance', 'disparity_space_sampling', 'box_warp', 'clamp_mode')


def split_planes(backbone_output: torch.Tensor) -> torch.Tensor:
    """The backbone's output (N, 3 * 32, H, W) as tri-planes (N, 3, 32, H, W): the xy, xz and zy
    feature planes, in the layout the renderer samples."""
    misc.assert_shape(backbone_output, [None, 3 * PLANE_CHANNELS, None, None], 'backbone output')
    n, _, h, w = backbone_output.shape
    return backbone_output.view(n, 3, PLANE_CHANNELS, h, w)


@persistence.persistent_class
class TriPlaneGenerator(DomainInputMixin, torch.nn.Module):
    """z (N, z_dim) + camera label c (N, 25) -> {'image', 'image_raw', 'image_depth'}.

    `rendering_kwargs` are EG3D's (see ImportanceRenderer; superresolution_module, sr_antialias,
    c_gen_conditioning_zero, c_scale, superresolution_noise_mode, decoder_lr_mul, ...) plus our
    optional `ray_chunk_size`. Remaining keyword arguments configure the backbone's synthesis network.

    `domain_kwargs` (None = plain EG3D, exactly its state-dict keys) adds the Domain Adaptation Module
    (training.domain_adaptation: domain names, encoder, ModRes options); then `synthesis`, `forward`,
    `sample` and `sample_mixed` take `domain` (None, a stored name, a code (N, num_ws, w_dim) or
    exemplar images (N, 3, H, W) in [-1, 1]) and `alpha` (0 = EG3D exactly, 1 = the style, > 1 exaggerates).

    Many cameras of one head: `planes = G.synthesize_planes(ws, domain=..., alpha=...)` once, then
    `G.synthesis(ws, c, planes=planes, domain=..., alpha=...)` per camera renders without the backbone
    (the domain and alpha still drive super-resolution), and `G.decode_planes(planes, points, dirs)`
    gives densities and colour features at any points (shapes).
    """

    def __init__(self,
                 z_dim: int,
                 c_dim: int,                    # Conditioning label size (25 for a camera label).
                 w_dim: int,
                 img_resolution: int,           # Final (super-resolved) image resolution.
                 img_channels: int,
                 sr_num_fp16_res: int = 0,
                 mapping_kwargs: dict = {},
                 rendering_kwargs: dict = {},
                 sr_kwargs: dict = {},
                 domain_kwargs: Optional[dict] = None,
                 **synthesis_kwargs):
        missing = [k for k in REQUIRED_RENDERING_KWARGS if k not in rendering_kwargs]
        if missing:
            raise ValueError(f'rendering_kwargs lacks {missing} (EG3D train.py sets them; see configs/ffhq512.json)')
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.renderer = ImportanceRenderer()
        self.ray_sampler = RaySampler()
        self.backbone = StyleGAN2Backbone(z_dim, c_dim, w_dim, img_resolution=256, img_channels=PLANE_CHANNELS * 3,
                                          mapping_kwargs=mapping_kwargs, **synthesis_kwargs,
                                          **backbone_dam_kwargs(domain_kwargs))
        self.superresolution = dnnlib.util.construct_class_by_name(
            class_name=rendering_kwargs['superresolution_module'], channels=PLANE_CHANNELS,
            img_resolution=img_resolution, sr_num_fp16_res=sr_num_fp16_res,
            sr_antialias=rendering_kwargs['sr_antialias'], **sr_kwargs, **superresolution_dam_kwargs(domain_kwargs))
        self.decoder = OSGDecoder(PLANE_CHANNELS, {'decoder_lr_mul': rendering_kwargs.get('decoder_lr_mul', 1),
                                                   'decoder_output_dim': 32})
        self.neural_rendering_resolution = 64
        self.rendering_kwargs = rendering_kwargs
        self._last_planes = None
        self._init_domain_input(domain_kwargs, self.backbone.num_ws, w_dim)

    def mapping(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False) -> torch.Tensor:
        """z (N, z_dim), c (N, c_dim) -> ws (N, num_ws, w_dim)."""
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.z_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f'latent z must be (N, {self.z_dim}); got {got}')
        misc.assert_finite(z, 'latent z')
        self._check_label(c, z.shape[0])
        if self.rendering_kwargs['c_gen_conditioning_zero']:
            c = torch.zeros_like(c)
        return self.backbone.mapping(z, c * self.rendering_kwargs.get('c_scale', 0), truncation_psi=truncation_psi,
                                     truncation_cutoff=truncation_cutoff, update_emas=update_emas)

    def synthesis(self, ws: torch.Tensor, c: torch.Tensor, neural_rendering_resolution: Optional[int] = None,
                  update_emas: bool = False, cache_backbone: bool = False, use_cached_backbone: bool = False,
                  ray_chunk_size: Optional[int] = None, domain: DomainInput = None, alpha: float = 1,
                  planes: Optional[torch.Tensor] = None, **synthesis_kwargs) -> Dict[str, torch.Tensor]:
        """ws (N, num_ws, w_dim), camera label c (N, 25) -> {'image': (N, 3, R, R) super-resolved,
        'image_raw': (N, 3, r, r) neural render, 'image_depth': (N, 1, r, r)}, r = neural_rendering_resolution
        (remembered for later calls, as in EG3D). `ray_chunk_size` bounds the rays rendered at once
        (0 = all at once, as EG3D; None = rendering_kwargs's or the renderer's DEFAULT_RAY_CHUNK_SIZE).
        `domain` / `alpha`: the domain input and its strength (see the class docstring).
        `planes`: tri-planes (N, 3, 32, H, W) from `synthesize_planes` for these ws, domain and alpha,
        rendered instead of running the backbone. EG3D's `cache_backbone` / `use_cached_backbone`
        keep and reuse the last planes inside G.
        """
        self._check_ws(ws)
        check_camera_label(c, ws.shape[0])
        dam = self._dam_inputs(ws, domain, alpha)
        if neural_rendering_resolution is None:
            neural_rendering_resolution = self.neural_rendering_resolution
        elif not isinstance(neural_rendering_resolution, int) or neural_rendering_resolution < 2:
            raise ValueError(f'neural_rendering_resolution must be an int >= 2, got {neural_rendering_resolution!r}')
        else:
            self.neural_rendering_resolution = neural_rendering_resolution
        cam2world_matrix = c[:, :16].view(-1, 4, 4)
        intrinsics = c[:, 16:CAMERA_LABEL_DIM].view(-1, 3, 3)
        ray_origins, ray_directions = self.ray_sampler(cam2world_matrix, intrinsics, neural_rendering_resolution)

        if planes is not None:
            misc.assert_shape(planes, [ws.shape[0], 3, PLANE_CHANNELS, None, None], 'planes')
        elif use_cached_backbone and self._last_planes is not None:
            planes = self._last_planes
        else:
            planes = self._run_backbone(ws, dam, update_emas, **synthesis_kwargs)
        if cache_backbone:
            self._last_planes = planes

        on_cpu = ray_origins.device.type == 'cpu'
        if on_cpu:
            misc.release_freed_cpu_memory()  # the backbone's leftovers
        feature_samples, depth_samples, _ = self.renderer(planes, self.decoder, ray_origins, ray_directions,
                                                          self.rendering_kwargs, ray_chunk_size=ray_chunk_size)
        planes = None  # super-resolution does not need them: drop this reference before its peak
        if on_cpu:
            misc.release_freed_cpu_memory()  # the rendering's leftovers
        N = ray_origins.shape[0]
        H = W = neural_rendering_resolution
        feature_image = feature_samples.permute(0, 2, 1).reshape(N, feature_samples.shape[-1], H, W).contiguous()
        depth_image = depth_samples.permute(0, 2, 1).reshape(N, 1, H, W)

        rgb_image = feature_image[:, :3]
        sr_kwargs = {k: v for k, v in synthesis_kwargs.items() if k != 'noise_mode'}
        sr_image = self.superresolution(rgb_image, feature_image, ws, **dam,
                                        noise_mode=self.rendering_kwargs['superresolution_noise_mode'], **sr_kwargs)
        return {'image': sr_image, 'image_raw': rgb_image, 'image_depth': depth_image}

    def sample(self, coordinates: torch.Tensor, directions: torch.Tensor, z: torch.Tensor, c: torch.Tensor,
               truncation_psi: float = 1, truncation_cutoff: Optional[int] = None, update_emas: bool = False,
               **synthesis_kwargs) -> Dict[str, torch.Tensor]:
        """Decoder outputs at arbitrary points (N, M, 3) for latents z: {'rgb': (N, M, 32), 'sigma': (N, M, 1)}."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.sample_mixed(coordinates, directions, ws, update_emas=update_emas, **synthesis_kwargs)

    def sample_mixed(self, coordinates: torch.Tensor, directions: torch.Tensor, ws: torch.Tensor,
                     truncation_psi: float = 1, truncation_cutoff: Optional[int] = None, update_emas: bool = False,
                     domain: DomainInput = None, alpha: float = 1, **synthesis_kwargs) -> Dict[str, torch.Tensor]:
        """Like `sample`, from ws (N, num_ws, w_dim); truncation arguments are accepted and ignored (EG3D's API).
        `domain` / `alpha` as in `synthesis`."""
        _ = truncation_psi, truncation_cutoff
        self._check_ws(ws)
        misc.assert_shape(coordinates, [ws.shape[0], None, 3], 'coordinates')  # before the backbone runs
        misc.assert_shape(directions, list(coordinates.shape), 'directions')
        planes = self.synthesize_planes(ws, update_emas=update_emas, domain=domain, alpha=alpha, **synthesis_kwargs)
        return self.decode_planes(planes, coordinates, directions)

    def synthesize_planes(self, ws: torch.Tensor, update_emas: bool = False, domain: DomainInput = None,
                          alpha: float = 1, **synthesis_kwargs) -> torch.Tensor:
        """Tri-planes (N, 3, 32, 256, 256) of ws (N, num_ws, w_dim) with the domain input at strength alpha
        (see the class docstring); render them from any camera with `synthesis(..., planes=planes)`."""
        self._check_ws(ws)
        return self._run_backbone(ws, self._dam_inputs(ws, domain, alpha), update_emas, **synthesis_kwargs)

    def decode_planes(self, planes: torch.Tensor, coordinates: torch.Tensor,
                      directions: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Decoder outputs {'rgb': (N, M, 32), 'sigma': (N, M, 1)} at points (N, M, 3) of tri-planes
        (N, 3, 32, H, W)."""
        misc.assert_shape(planes, [None, 3, PLANE_CHANNELS, None, None], 'planes')
        misc.assert_shape(coordinates, [planes.shape[0], None, 3], 'coordinates')
        misc.assert_shape(directions, list(coordinates.shape), 'directions')
        return self.renderer.run_model(planes, self.decoder, coordinates, directions, self.rendering_kwargs)

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, neural_rendering_resolution: Optional[int] = None,
                update_emas: bool = False, cache_backbone: bool = False, use_cached_backbone: bool = False,
                **synthesis_kwargs) -> Dict[str, torch.Tensor]:
        """Render images for latents z (N, z_dim) seen from cameras c (N, 25); see `synthesis`."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, c, update_emas=update_emas, neural_rendering_resolution=neural_rendering_resolution,
                              cache_backbone=cache_backbone, use_cached_backbone=use_cached_backbone,
                              **synthesis_kwargs)

    def _dam_inputs(self, ws: torch.Tensor, domain: DomainInput, alpha: float) -> Dict[str, object]:
        """The DAM arguments of the backbone and super-resolution: the domain code (N, num_ws, w_dim) or None, alpha."""
        return dict(domain_ws=self.get_domain_code(domain, ws.shape[0], source_ws=ws), alpha=check_alpha(alpha))

    def _run_backbone(self, ws: torch.Tensor, dam: Dict[str, object], update_emas: bool,
                      **synthesis_kwargs) -> torch.Tensor:
        """Tri-planes (N, 3, 32, H, W) from the backbone for ws and the DAM arguments of `_dam_inputs`."""
        return split_planes(self.backbone.synthesis(ws, update_emas=update_emas, **dam, **synthesis_kwargs))

    def _check_label(self, c: torch.Tensor, batch_size: int) -> None:
        if self.c_dim == CAMERA_LABEL_DIM:
            check_camera_label(c, batch_size, conditioning_only=True)
            return
        misc.assert_shape(c, [batch_size, self.c_dim], 'conditioning label c')
        misc.assert_finite(c, 'conditioning label c')

    def _check_ws(self, ws: torch.Tensor) -> None:
        expected = (self.backbone.num_ws, self.w_dim)
        if not isinstance(ws, torch.Tensor) or ws.ndim != 3 or tuple(ws.shape[1:]) != expected:
            got = tuple(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
            raise ValueError(f'ws must be (N, {expected[0]}, {expected[1]}) as returned by G.mapping; got {got}')
        misc.assert_finite(ws, 'ws')


class OSGDecoder(torch.nn.Module):
    """Tri-plane feature decoder: mean over the three planes, then a 64-unit softplus MLP giving a
    raw density and `decoder_output_dim` colour features (sigmoid, widened slightly past [0, 1])."""

    def __init__(self, n_features: int, options: dict):
        super().__init__()
        self.hidden_dim = 64
        self.net = torch.nn.Sequential(
            FullyConnectedLayer(n_features, self.hidden_dim, lr_multiplier=options['decoder_lr_mul']),
            torch.nn.Softplus(),
            FullyConnectedLayer(self.hidden_dim, 1 + options['decoder_output_dim'],
                                lr_multiplier=options['decoder_lr_mul']))

    def fused_weights(self) -> DecoderWeights:
        """Both layers' weights and biases with their gains applied, as the fused volume-rendering op reads them."""
        layers = []
        for fc in (self.net[0], self.net[2]):
            bias = fc.bias if fc.bias_gain == 1 else fc.bias * fc.bias_gain  # as FullyConnectedLayer.forward scales it
            layers += [fc.weight * fc.weight_gain, bias]
        return DecoderWeights(*layers)

    def forward(self, sampled_features: torch.Tensor, ray_directions: torch.Tensor) -> Dict[str, torch.Tensor]:
        """sampled_features (N, 3, M, C); ray_directions unused (view-independent). Returns
        {'rgb': (N, M, decoder_output_dim), 'sigma': (N, M, 1)}."""
        _ = ray_directions
        x = sampled_features.mean(1)
        N, M, C = x.shape
        x = self.net(x.reshape(N * M, C)).view(N, M, -1)
        rgb = torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001  # MipNeRF's widened sigmoid
        sigma = x[..., 0:1]
        return {'rgb': rgb, 'sigma': sigma}
