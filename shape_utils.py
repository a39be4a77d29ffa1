"""Shape extraction from a tri-plane generator: density volumes, `.mrc` files and `.ply` meshes.

The volume is sampled on a regular grid spanning the generator's bounding box
`[-box_warp/2, box_warp/2]^3` (both ends included, as EG3D does), chunk by chunk so that memory on
the device stays bounded whatever the resolution. Marching cubes comes from PyMCubes (`mcubes`),
`.mrc` files are written by `mrcfile`.
"""

from typing import Callable, Tuple

import click
import mrcfile
import numpy as np
import torch

import dnnlib

DensityFn = Callable[[torch.Tensor], torch.Tensor]
EMPTY_DENSITY = -1000.0  # raw density written where the volume is blanked (far below any iso-level)


def voxel_coordinates(resolution: int, box_size: float, start: int, stop: int,
                      device: torch.device = torch.device('cpu')) -> torch.Tensor:
    """World coordinates of the grid points with flat indices `[start, stop)`.

    Flat index `i` is voxel `(i // R**2, (i // R) % R, i % R)` along (x, y, z), i.e. x varies slowest,
    the order EG3D samples in. Returns (stop - start, 3) float32.
    """
    if resolution < 2:
        raise ValueError(f'grid resolution must be at least 2, got {resolution}')
    if not 0 <= start <= stop <= resolution ** 3:
        raise ValueError(f'flat voxel range [{start}, {stop}) is outside [0, {resolution ** 3})')
    index = torch.arange(start, stop, device=device, dtype=torch.int64)
    ijk = torch.stack([index // resolution ** 2, (index // resolution) % resolution, index % resolution], dim=1)
    voxel_size = box_size / (resolution - 1)
    return ijk.to(torch.float32) * voxel_size - box_size / 2


@torch.no_grad()
def sample_density_volume(density_fn: DensityFn, resolution: int, box_size: float, chunk_size: int = 2 ** 20,
                          device: torch.device = torch.device('cpu')) -> np.ndarray:
    """Evaluate a density field on a `resolution**3` grid.

    `density_fn` maps (1, M, 3) world coordinates to (1, M, 1) densities (e.g. a closure over
    `G.sample_mixed`). At most `chunk_size` points are on the device at once; the result is kept on the
    host. Returns a float32 array (R, R, R) indexed [x, y, z].
    """
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be positive, got {chunk_size}')
    total = resolution ** 3
    volume = np.empty(total, dtype=np.float32)
    for start in range(0, total, chunk_size):
        stop = min(start + chunk_size, total)
        coords = voxel_coordinates(resolution, box_size, start, stop, device=device).unsqueeze(0)
        sigma = density_fn(coords)
        if tuple(sigma.shape) != (1, stop - start, 1):
            raise ValueError(f'density_fn must return densities of shape (1, {stop - start}, 1) for (1, '
                             f'{stop - start}, 3) points, got {tuple(sigma.shape)}')
        volume[start:stop] = sigma[0, :, 0].float().cpu().numpy()
    return volume.reshape(resolution, resolution, resolution)


@torch.no_grad()
def density_volume(G: torch.nn.Module, planes: torch.Tensor, resolution: int,
                   chunk_size: int = 2 ** 20) -> np.ndarray:
    """Raw densities (R, R, R) of a tri-plane generator G, indexed [x, y, z], on a grid filling G's bounding box.

    planes: (1, 3, 32, H, W) tri-planes of one latent (`G.synthesize_planes`). Decoding them, rather
    than calling G.sample_mixed per chunk, runs the backbone once.
    """
    def density(coords: torch.Tensor) -> torch.Tensor:
        # The decoder ignores view directions for density; EG3D passes (0, 0, -1).
        directions = torch.zeros_like(coords)
        directions[..., -1] = -1
        return G.decode_planes(planes, coords, directions)['sigma']

    return sample_density_volume(density, resolution, G.rendering_kwargs['box_warp'], chunk_size=chunk_size,
                                 device=planes.device)


def head_mesh(volume: np.ndarray, level: float, box_size: float) -> Tuple[np.ndarray, np.ndarray]:
    """The surface of a generator's density volume (R, R, R) at `level`: vertices (V, 3) in world units, faces (F, 3).

    The border is blanked as EG3D does (30/256 of the resolution; see `clear_border`), which also closes the mesh.
    """
    volume = clear_border(volume, border_width(volume.shape[0]), EMPTY_DENSITY)
    return extract_mesh(volume, level, box_size)


def border_width(resolution: int) -> int:
    """Voxels blanked on each face of a `resolution`**3 volume before meshing (EG3D's 30 of 256)."""
    return int(30 * resolution / 256)


def clear_border(volume: np.ndarray, width: int, value: float) -> np.ndarray:
    """Copy of a (R, R, R) volume whose outer `width` voxels on every face are set to `value`.

    The tri-plane densities near the box faces are unreliable (floaters that the camera never
    sees), so EG3D blanks a border of 30/256 of the resolution before meshing; this closes the mesh too.
    """
    if volume.ndim != 3:
        raise ValueError(f'volume must be 3-D (R, R, R), got shape {volume.shape}')
    if not 0 <= 2 * width < min(volume.shape):
        raise ValueError(f'border width {width} leaves nothing of a volume of shape {volume.shape}')
    inner = tuple(slice(width, n - width) for n in volume.shape)
    out = np.full(volume.shape, value, volume.dtype)
    out[inner] = volume[inner]
    return out


def write_mrc(path: str, volume: np.ndarray, voxel_size: float = 1.0) -> None:
    """Write a 3-D array as an MRC2014 file of 32-bit floats (mode 2), viewable in ChimeraX.

    `volume[k, j, i]` is the voxel in section k, row j, column i (MRC's z, y, x), so an
    (R, R, R) array indexed [x, y, z] lands with the file's z axis along the array's first axis.
    The origin is 0 and every voxel is `voxel_size` wide.
    """
    data = np.ascontiguousarray(volume, dtype='<f4')
    if data.ndim != 3:
        raise ValueError(f'an MRC volume must be 3-D (nz, ny, nx), got shape {volume.shape}')
    with dnnlib.util.atomic_output(path) as tmp_path, mrcfile.new(tmp_path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel_size


def require_mcubes(option: str) -> None:
    """Stop with an install hint when PyMCubes, which `extract_mesh` needs, is missing."""
    try:
        import mcubes  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError as err:
        raise click.ClickException(f'{option} needs PyMCubes ({err}); pip install PyMCubes') from err


def extract_mesh(volume: np.ndarray, level: float, box_size: float) -> Tuple[np.ndarray, np.ndarray]:
    """Marching cubes on a (R, R, R) density volume indexed [x, y, z] (as `sample_density_volume` returns).

    Returns vertices (V, 3) float32 in world coordinates and faces (F, 3) int32, wound so that their
    normals point out of the dense region (towards lower density).
    """
    import mcubes  # PyMCubes; imported here so the rest of the module works without it

    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f'volume must be a cube (R, R, R), got shape {volume.shape}')
    if not volume.min() < level < volume.max():
        raise ValueError(f'iso-level {level} is outside the density range [{volume.min():g}, {volume.max():g}]: '
                         f'no surface to extract')
    verts, faces = mcubes.marching_cubes(np.ascontiguousarray(volume, dtype=np.float64), float(level))
    voxel_size = box_size / (volume.shape[0] - 1)
    verts = (verts * voxel_size - box_size / 2).astype(np.float32)
    # PyMCubes winds triangles counter-clockwise seen from the low-value side: outward for a dense head.
    return verts, faces.astype(np.int32)


def write_ply(path: str, verts: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh as a binary little-endian PLY: verts (V, 3) float, faces (F, 3) int."""
    content = ply_bytes(verts, faces)
    with dnnlib.util.atomic_output(path) as tmp_path, open(tmp_path, 'wb') as f:
        f.write(content)


def ply_bytes(verts: np.ndarray, faces: np.ndarray) -> bytes:
    """A triangle mesh as the bytes of a binary little-endian PLY file: verts (V, 3) float, faces (F, 3) int."""
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f'verts must be (V, 3), got shape {verts.shape}')
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f'faces must be (F, 3) vertex indices, got shape {faces.shape}')
    if faces.size and (faces.min() < 0 or faces.max() >= len(verts)):
        raise ValueError(f'faces index vertices outside [0, {len(verts)})')
    header = ('ply\nformat binary_little_endian 1.0\n'
              f'element vertex {len(verts)}\nproperty float x\nproperty float y\nproperty float z\n'
              f'element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n')
    face_records = np.empty(len(faces), dtype=[('n', 'u1'), ('idx', '<i4', (3,))])
    face_records['n'] = 3
    face_records['idx'] = faces
    return header.encode('ascii') + np.ascontiguousarray(verts, dtype='<f4').tobytes() + face_records.tobytes()
