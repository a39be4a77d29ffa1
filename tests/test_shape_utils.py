"""shape_utils: grid sampling order, chunking, MRC/PLY files and marching cubes on analytic spheres."""

import io

import mrcfile
import numpy as np
import pytest
import torch

import shape_utils


def _sphere_density(center, radius):
    """Density 10 * (radius - distance), i.e. positive inside a sphere, as a (1, M, 3) -> (1, M, 1) fn."""
    center_t = torch.tensor(center, dtype=torch.float32)

    def density(coords):
        return 10 * (radius - (coords - center_t).norm(dim=-1, keepdim=True))
    return density


def test_voxel_coordinates_follow_eg3d_order():
    res, box = 5, 1.0
    coords = shape_utils.voxel_coordinates(res, box, 0, res ** 3).numpy()
    axis = np.linspace(-0.5, 0.5, res)
    gx, gy, gz = np.meshgrid(axis, axis, axis, indexing='ij')  # x slowest, z fastest
    ref = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], 1)
    np.testing.assert_allclose(coords, ref, atol=1e-6)
    np.testing.assert_allclose(shape_utils.voxel_coordinates(res, box, 7, 9).numpy(), ref[7:9], atol=1e-6)


@pytest.mark.parametrize('chunk', [1000, 7, 1 << 20])
def test_sample_density_volume_is_independent_of_chunking(chunk):
    res, box = 12, 2.0
    volume = shape_utils.sample_density_volume(_sphere_density([0.1, -0.2, 0.3], 0.5), res, box, chunk_size=chunk)
    axis = np.linspace(-1, 1, res)
    gx, gy, gz = np.meshgrid(axis, axis, axis, indexing='ij')
    ref = 10 * (0.5 - np.sqrt((gx - 0.1) ** 2 + (gy + 0.2) ** 2 + (gz - 0.3) ** 2))
    assert volume.shape == (res, res, res) and volume.dtype == np.float32
    np.testing.assert_allclose(volume, ref, atol=1e-5)


def test_sample_density_volume_rejects_wrong_output_shape():
    with pytest.raises(ValueError, match=r'density_fn must return densities of shape \(1, 27, 1\)'):
        shape_utils.sample_density_volume(lambda p: p[..., :2], 3, 1.0)


def test_clear_border_sets_only_the_border():
    vol = np.arange(6 ** 3, dtype=np.float32).reshape(6, 6, 6)
    out = shape_utils.clear_border(vol, 2, -1000)
    np.testing.assert_array_equal(out[2:4, 2:4, 2:4], vol[2:4, 2:4, 2:4])
    assert (out == -1000).sum() == 6 ** 3 - 2 ** 3
    np.testing.assert_array_equal(vol, np.arange(6 ** 3).reshape(6, 6, 6))  # input untouched
    with pytest.raises(ValueError, match='leaves nothing'):
        shape_utils.clear_border(vol, 3, 0)


def test_write_mrc_reads_back_with_the_header_chimerax_uses(tmp_path):
    vol = np.random.RandomState(0).randn(4, 5, 6).astype(np.float32)
    path = tmp_path / 'v.mrc'
    (tmp_path / 'v.mrc').write_bytes(b'an older file')  # replaced whole
    shape_utils.write_mrc(str(path), np.flip(vol, 0), voxel_size=0.5)  # a strided view, as gen_samples passes
    assert sorted(p.name for p in tmp_path.iterdir()) == ['v.mrc']  # no temporary file left
    with mrcfile.open(str(path), permissive=False) as mrc:
        np.testing.assert_array_equal(mrc.data, np.flip(vol, 0))
        header = mrc.header
        # The fields the earlier hand-written header set (voxel size = cell length / samples).
        assert (header.nx, header.ny, header.nz, header.mode) == (6, 5, 4, 2)  # float32
        assert (header.nxstart, header.nystart, header.nzstart) == (0, 0, 0)
        assert (header.mx, header.my, header.mz) == (6, 5, 4)
        assert header.cella.tolist() == (3.0, 2.5, 2.0) and header.cellb.tolist() == (90.0, 90.0, 90.0)
        assert (header.mapc, header.mapr, header.maps) == (1, 2, 3)  # columns, rows, sections = x, y, z
        assert header.origin.tolist() == (0.0, 0.0, 0.0) and header.ispg == 1 and header.nsymbt == 0
        assert mrc.voxel_size.tolist() == (0.5, 0.5, 0.5)
        np.testing.assert_allclose([header.dmin, header.dmax, header.dmean, header.rms],
                                   [vol.min(), vol.max(), vol.mean(), vol.std()], rtol=1e-5)
        assert header.map == b'MAP ' and mrc.is_volume()
    assert path.stat().st_size == 1024 + vol.size * 4
    assert mrcfile.validate(str(path), print_file=io.StringIO())
    with pytest.raises(ValueError, match='3-D'):
        shape_utils.write_mrc(str(path), vol[0], voxel_size=0.5)


def _signed_volume(verts, faces):
    """Volume enclosed by a triangle mesh (divergence theorem); positive when normals point outwards."""
    a, b, c = (verts[faces[:, k]].astype(np.float64) for k in range(3))
    return np.einsum('ij,ij->i', a, np.cross(b, c)).sum() / 6


def test_extract_mesh_of_a_sphere():
    res, box, center, radius = 40, 1.0, np.array([0.1, -0.05, 0.15]), 0.3
    volume = shape_utils.sample_density_volume(_sphere_density(center, radius), res, box)
    verts, faces = shape_utils.extract_mesh(volume, level=0.0, box_size=box)
    voxel = box / (res - 1)
    dist = np.linalg.norm(verts - center, axis=1)
    assert np.abs(dist - radius).max() < 0.1 * voxel  # a linear density is interpolated exactly along edges
    np.testing.assert_allclose(verts.mean(0), center, atol=0.1 * voxel)  # axes are x, y, z in order
    assert _signed_volume(verts, faces) == pytest.approx(4 / 3 * np.pi * radius ** 3, rel=0.02)
    num_edges = len(np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1),
                              axis=0))
    assert len(verts) - num_edges + len(faces) == 2  # closed genus-0 surface


def test_extract_mesh_rejects_level_without_surface():
    with pytest.raises(ValueError, match='outside the density range'):
        shape_utils.extract_mesh(np.zeros((4, 4, 4), np.float32), level=10, box_size=1.0)


def test_write_ply_round_trip(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    path = tmp_path / 'm.ply'
    shape_utils.write_ply(str(path), verts, faces)
    raw = path.read_bytes()
    end = raw.index(b'end_header\n') + len(b'end_header\n')
    header = raw[:end].decode('ascii')
    assert 'element vertex 4' in header and 'element face 4' in header
    body = raw[end:]
    np.testing.assert_array_equal(np.frombuffer(body[:48], '<f4').reshape(4, 3), verts)
    recs = np.frombuffer(body[48:], dtype=[('n', 'u1'), ('idx', '<i4', (3,))])
    assert (recs['n'] == 3).all()
    np.testing.assert_array_equal(recs['idx'], faces)
    with pytest.raises(ValueError, match='outside'):
        shape_utils.write_ply(str(path), verts, faces + 1)
