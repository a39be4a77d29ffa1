"""viewer.render_core without a browser: camera conversion, renders equal to gen_samples.py's, caching, meshes."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import shape_utils
from tests.gen_network import build_tiny_generator
from training import inference
from viewer.render_core import Named, RenderCore, RenderSettings, ViewCamera, camera_to_label, letterbox, orbit_camera

CPU = torch.device('cpu')
VIEWS = [(0.0, 0.0), (0.4, -0.2), (-0.7, 0.3)]


@pytest.fixture(scope='module')
def G():
    return build_tiny_generator(domain_names=['toon', 'sketch'])


@pytest.mark.parametrize('yaw, pitch', VIEWS)
@pytest.mark.parametrize('fov_deg', [18.837, 30.0])
def test_orbit_camera_label_equals_gen_utils_label_bit_for_bit(G, yaw, pitch, fov_deg):
    label = camera_to_label(orbit_camera(G, yaw, pitch, fov_deg), CPU)
    ref = inference.generator_camera_label(G, yaw, pitch, fov_deg, CPU)
    assert label.dtype == ref.dtype and torch.equal(label, ref)


def test_camera_label_geometry():
    # A camera on +z at distance 2 looking at the origin with a 90 degree vertical angle.
    label = camera_to_label(ViewCamera(position=(0.0, 0.0, 2.0), look_at=(0.0, 0.0, 0.0), fov_y=math.pi / 2), CPU)
    cam2world = label[0, :16].view(4, 4)
    np.testing.assert_allclose(cam2world[:3, 2], [0, 0, -1], atol=1e-7)  # forward (OpenCV z) points at the origin
    np.testing.assert_allclose(cam2world[:3, 1], [0, -1, 0], atol=1e-7)  # image down = world -y (y-up world)
    np.testing.assert_allclose(cam2world[:3, 3], [0, 0, 2])
    np.testing.assert_allclose(label[0, 16:].view(3, 3), [[0.5, 0, 0.5], [0, 0.5, 0.5], [0, 0, 1]], atol=1e-7)
    with pytest.raises(ValueError, match='fov_y'):
        camera_to_label(ViewCamera((0, 0, 2), (0, 0, 0), 0.0), CPU)


@pytest.mark.parametrize('domain, alpha', [('sketch', 0.5), (None, 1.0)])
def test_render_equals_gen_samples_bit_for_bit(G, domain, alpha):
    seed = 3
    core = RenderCore(G, CPU)
    settings = RenderSettings(seed=seed, domain=domain, alpha=alpha, neural_rendering_resolution=core.native_resolution)
    conditioning = inference.generator_camera_label(G, 0.0, 0.0, device=CPU)
    ws = G.mapping(inference.z_from_seed(seed, G.z_dim, CPU), conditioning, truncation_psi=0.7, truncation_cutoff=14)
    code = None if domain is None else G.get_domain_code(domain, 1, source_ws=ws)
    cameras = [inference.generator_camera_label(G, yaw, pitch, device=CPU) for yaw, pitch in VIEWS]
    kwargs = inference.domain_kwargs(code, alpha)
    refs = inference.render_views(G, ws, G.synthesize_planes(ws, noise_mode='const', **kwargs), cameras, seed, kwargs)
    for (yaw, pitch), ref in zip(VIEWS, refs):
        camera = orbit_camera(G, yaw, pitch)
        np.testing.assert_array_equal(core.render(settings, camera), inference.image_to_uint8(ref['image'])[0])
        raw = core.render(dataclasses.replace(settings, output='raw'), camera)
        np.testing.assert_array_equal(raw, inference.image_to_uint8(ref['image_raw'])[0])
        depth = core.render(dataclasses.replace(settings, output='depth'), camera)
        unit = inference.depth_to_unit(ref['image_depth'], G.rendering_kwargs)[0, 0].numpy()
        assert depth.shape == (*unit.shape, 3) and (depth[..., 0] == depth[..., 2]).all()
        np.testing.assert_array_equal(depth[..., 0], np.round(unit * 255).astype(np.uint8))


def test_planes_are_computed_once_per_latent_style_and_alpha(G):
    core = RenderCore(G, CPU)
    calls = []
    hook = G.backbone.synthesis.register_forward_hook(lambda *_: calls.append(1))
    settings = RenderSettings(seed=1, domain='toon', alpha=1.0, neural_rendering_resolution=core.native_resolution)
    first = core.render(settings, orbit_camera(G, 0.0, 0.0))
    moved = core.render(settings, orbit_camera(G, 0.5, 0.0))
    core.render(dataclasses.replace(settings, output='depth', neural_rendering_resolution=16),
                orbit_camera(G, 0.2, 0.1))
    assert len(calls) == 1
    assert np.abs(first.astype(int) - moved.astype(int)).mean() > 1  # the camera moved the picture
    natural = core.render(dataclasses.replace(settings, alpha=0.0), orbit_camera(G, 0.0, 0.0))
    hook.remove()
    assert len(calls) == 2
    assert np.abs(first.astype(int) - natural.astype(int)).mean() > 1  # alpha changed the picture


def test_uploaded_latent_and_exemplar_render_as_g_does(G):
    core = RenderCore(G, CPU)
    gen = torch.Generator().manual_seed(0)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=gen), inference.generator_camera_label(G, 0, 0, device=CPU))
    exemplar = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    settings = RenderSettings(seed=5, latent=Named('latent.npy', 'd1', ws), exemplar=Named('style.png', 'd2', exemplar),
                              domain='toon', alpha=0.8, neural_rendering_resolution=core.native_resolution)
    c = inference.generator_camera_label(G, 0.3, 0.0, device=CPU)
    torch.manual_seed(5)
    with torch.no_grad():
        ref = G.synthesis(ws, c, noise_mode='const', domain=exemplar, alpha=0.8)['image']
    np.testing.assert_array_equal(core.render(settings, orbit_camera(G, 0.3, 0.0)), inference.image_to_uint8(ref)[0])


def test_mesh_equals_gen_samples_shape(G):
    core = RenderCore(G, CPU)
    settings = RenderSettings(seed=2, domain='toon', alpha=0.5, neural_rendering_resolution=core.native_resolution)
    verts, faces = core.mesh(settings, resolution=16, level=0.0)
    conditioning = inference.generator_camera_label(G, 0.0, 0.0, device=CPU)
    ws = G.mapping(inference.z_from_seed(2, G.z_dim, CPU), conditioning, truncation_psi=0.7, truncation_cutoff=14)
    volume = shape_utils.density_volume(G, G.synthesize_planes(ws, noise_mode='const', domain='toon', alpha=0.5), 16)
    ref_verts, ref_faces = shape_utils.head_mesh(volume, 0.0, G.rendering_kwargs['box_warp'])
    assert len(faces) > 0
    np.testing.assert_array_equal(verts, ref_verts)
    np.testing.assert_array_equal(faces, ref_faces)


def test_letterbox_keeps_the_full_height():
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    wide = letterbox(image, 2.0)
    assert wide.shape == (4, 8, 3)
    np.testing.assert_array_equal(wide[:, 2:6], image)
    assert not wide[:, :2].any() and not wide[:, 6:].any()
    np.testing.assert_array_equal(letterbox(image, 0.5), image[:, 1:3])
    np.testing.assert_array_equal(letterbox(image, 1.0), image)
