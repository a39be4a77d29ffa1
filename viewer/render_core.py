"""The viewer's render core: generator + render settings + a browser camera -> a picture (no UI here).

The UI only builds `RenderSettings` and `ViewCamera`s and calls `RenderCore`; the same calls render
for the tests and the benchmark. Tri-planes are computed once per (latent, style, alpha) and kept in
a small cache, so moving the camera only runs the volume renderer and the super-resolution.
"""

import collections
import dataclasses
import math
import threading
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

import shape_utils
from camera_utils import FOV_DEG, create_cam2world_matrix
from training import inference

OUTPUT_KINDS = ('image', 'depth', 'raw')  # super-resolved image, depth map, raw neural render
CACHE_SIZE = 8  # generator inputs and tri-planes kept for the recent (latent, style, alpha) choices of all tabs


@dataclasses.dataclass(frozen=True)
class Named:
    """A tensor the user supplied (an exemplar image or a latent), named by its file and content digest.

    Equality and hashing use the name and digest only, so settings holding it can key the caches.
    """
    name: str
    digest: str
    tensor: torch.Tensor = dataclasses.field(compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """Everything but the camera that decides a picture.

    latent: (1, num_ws, w_dim) ws that replaces seed / truncation (e.g. projector.py's latent.npy).
    domain: a stored domain name, or None for plain EG3D output; exemplar (1, 3, H, W) in [-1, 1]
    takes precedence over it. alpha: style strength. output: one of OUTPUT_KINDS.
    """
    seed: int = 0
    truncation_psi: float = 0.7
    truncation_cutoff: int = 14
    latent: Optional[Named] = None
    domain: Optional[str] = None
    exemplar: Optional[Named] = None
    alpha: float = 1.0
    output: str = 'image'
    neural_rendering_resolution: int = 64

    def __post_init__(self):
        if self.output not in OUTPUT_KINDS:
            raise ValueError(f'output must be one of {", ".join(OUTPUT_KINDS)}; got {self.output!r}')

    def source_key(self) -> Tuple:
        """What decides the latent ws."""
        return ('latent', self.latent) if self.latent is not None else \
            ('seed', self.seed, self.truncation_psi, self.truncation_cutoff)

    def style_key(self) -> Tuple:
        """What decides the domain input (None = plain EG3D, so alpha does not matter then)."""
        if self.exemplar is not None:
            return ('exemplar', self.exemplar, self.alpha)
        return ('none',) if self.domain is None else ('domain', self.domain, self.alpha)


@dataclasses.dataclass(frozen=True)
class ViewCamera:
    """A browser camera: position and look-at point in world units (EG3D's y-up world), vertical field of view.

    The camera looks from `position` at `look_at` without roll (EG3D's generators see no roll).
    """
    position: Tuple[float, float, float]
    look_at: Tuple[float, float, float]
    fov_y: float  # radians, full vertical angle of the square picture


def camera_to_label(camera: ViewCamera, device: torch.device) -> torch.Tensor:
    """The EG3D camera label (1, 25) of a browser camera: cam2world (OpenCV axes) then normalised intrinsics.

    Built like camera_utils.LookAtPoseSampler builds its poses, so a camera from `orbit_camera`
    gives the label `inference.generator_camera_label` gives for the same yaw / pitch.
    """
    if not 0 < camera.fov_y < math.pi:
        raise ValueError(f'fov_y must be in (0, pi) radians, got {camera.fov_y}')
    origin = torch.tensor([camera.position], dtype=torch.float32, device=device)
    target = torch.tensor([camera.look_at], dtype=torch.float32, device=device)
    cam2world = create_cam2world_matrix(target - origin, origin)
    focal = 0.5 / math.tan(camera.fov_y / 2)  # in units of the image size
    intrinsics = torch.tensor([[focal, 0, 0.5], [0, focal, 0.5], [0, 0, 1]], dtype=torch.float32, device=device)
    return torch.cat([cam2world.reshape(1, 16), intrinsics.reshape(1, 9)], dim=1)


def orbit_camera(G: torch.nn.Module, yaw: float, pitch: float, fov_deg: float = FOV_DEG) -> ViewCamera:
    """The browser camera of gen_samples.py's view `yaw`/`pitch` (radians from frontal) and `--fov-deg`.

    EG3D's `fov_deg` is not the picture's angle (FOV_to_intrinsics divides by 1.414): the vertical
    angle is recovered from its focal length.
    """
    label = inference.generator_camera_label(G, yaw, pitch, fov_deg)[0]
    position, focal = label[[3, 7, 11]], float(label[16])  # cam2world's translation column, then fx
    look_at = inference.camera_pivot(G)
    return ViewCamera(position=tuple(position.tolist()), look_at=tuple(float(p) for p in look_at),
                      fov_y=2 * math.atan(0.5 / focal))


def letterbox(image: np.ndarray, aspect: float) -> np.ndarray:
    """A square picture (H, H, 3) fitted to a canvas of width/height `aspect`, keeping its full height.

    Wider canvases get black side bars; narrower ones lose the picture's sides (the browser's
    camera keeps its vertical angle when the window changes shape).
    """
    height, width = image.shape[:2]
    target = max(1, int(round(height * aspect)))
    if target >= width:
        left = (target - width) // 2
        out = np.zeros((height, target, image.shape[2]), dtype=image.dtype)
        out[:, left:left + width] = image
        return out
    left = (width - target) // 2
    return np.ascontiguousarray(image[:, left:left + target])


@dataclasses.dataclass
class _Prepared:
    """What one (latent, style, alpha) renders from: ws (1, num_ws, w_dim), domain kwargs, tri-planes
    (1, 3, 32, H, W)."""
    ws: torch.Tensor
    domain_kwargs: Dict[str, Any]
    planes: torch.Tensor


class RenderCore:
    """Renders `RenderSettings` from `ViewCamera`s with one generator on one device, one call at a time.

    Thread-safe: calls from several threads are serialised by a lock (one render at a time per device).
    """

    def __init__(self, G: torch.nn.Module, device: torch.device):
        self.G = G
        self.device = device
        self.num_ws = G.backbone.num_ws
        self.domain_names = list(getattr(G, 'domain_names', None) or [])
        self.has_encoder = getattr(G, 'encoder', None) is not None
        self.native_resolution = int(G.neural_rendering_resolution)
        # EG3D conditions the mapping on the frontal camera (gen_samples.py does the same).
        self._conditioning = inference.generator_camera_label(G, 0.0, 0.0, FOV_DEG, device)
        self._cache: 'collections.OrderedDict[Tuple, _Prepared]' = collections.OrderedDict()
        self._lock = threading.Lock()

    def default_settings(self) -> RenderSettings:
        """The network's native neural rendering resolution, its first stored domain (if any), alpha 1."""
        return RenderSettings(domain=self.domain_names[0] if self.domain_names else None,
                              neural_rendering_resolution=self.native_resolution)

    @torch.inference_mode()
    def render(self, settings: RenderSettings, camera: ViewCamera) -> np.ndarray:
        """The picture (H, W, 3) uint8 of `settings.output` seen from `camera`."""
        with self._lock:
            prepared = self._prepare(settings)
            # The renderer's random draws are seeded as gen_samples.py seeds them.
            [out] = inference.render_views(self.G, prepared.ws, prepared.planes, [camera_to_label(camera, self.device)],
                                           settings.seed, prepared.domain_kwargs,
                                           neural_rendering_resolution=settings.neural_rendering_resolution)
            return self._picture(out, settings.output)

    @torch.inference_mode()
    def mesh(self, settings: RenderSettings, resolution: int, level: float) -> Tuple[np.ndarray, np.ndarray]:
        """The head's surface: vertices (V, 3) in world units and faces (F, 3), from a `resolution`**3 volume.

        Raises ValueError when the density never crosses `level` (no surface).
        """
        with self._lock:
            prepared = self._prepare(settings)
            volume = shape_utils.density_volume(self.G, prepared.planes, resolution)
        return shape_utils.head_mesh(volume, level, self.G.rendering_kwargs['box_warp'])

    def _prepare(self, settings: RenderSettings) -> '_Prepared':
        """The generator inputs and tri-planes of `settings` (from the cache when recently used)."""
        key = (settings.source_key(), settings.style_key())
        prepared = self._cache.get(key)
        if prepared is None:
            if settings.latent is not None:
                ws = settings.latent.tensor.to(self.device, torch.float32)
            else:
                z = inference.z_from_seed(settings.seed, self.G.z_dim, self.device)
                ws = self.G.mapping(z, self._conditioning, truncation_psi=settings.truncation_psi,
                                    truncation_cutoff=settings.truncation_cutoff)
            domain = settings.exemplar.tensor.to(self.device) if settings.exemplar is not None else settings.domain
            # A stored name or an exemplar becomes a code once (the encoder may use the natural ws).
            code = None if domain is None else self.G.get_domain_code(domain, 1, source_ws=ws)
            domain_kwargs = inference.domain_kwargs(code, settings.alpha)
            planes = self.G.synthesize_planes(ws, noise_mode='const', **domain_kwargs)
            prepared = _Prepared(ws, domain_kwargs, planes)
            self._cache[key] = prepared
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return prepared

    def _picture(self, out: Dict[str, torch.Tensor], output: str) -> np.ndarray:
        if output == 'image':
            return inference.image_to_uint8(out['image'])[0]
        if output == 'raw':
            return inference.image_to_uint8(out['image_raw'])[0]
        unit = inference.depth_to_unit(out['image_depth'], self.G.rendering_kwargs)
        grey = (unit[0, 0] * 255).round().to(torch.uint8).cpu().numpy()
        return np.repeat(grey[..., None], 3, axis=2)
