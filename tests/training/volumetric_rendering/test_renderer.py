"""ImportanceRenderer: plane projection and sampling, depth sampling, inverse-CDF sampling and full
renders in configurations other than the fixtures' (disparity space, 'auto' limits, density noise)."""

import math

import numpy as np
import pytest
import torch

from camera_utils import FOV_to_intrinsics, LookAtPoseSampler
from training.triplane import OSGDecoder
from training.volumetric_rendering.ray_sampler import RaySampler
from training.volumetric_rendering.renderer import (DEFAULT_RAY_CHUNK_SIZE, ImportanceRenderer, generate_planes,
                                                    project_onto_planes, sample_from_planes)

OPTIONS = dict(ray_start=2.25, ray_end=3.3, depth_resolution=8, depth_resolution_importance=6,
               disparity_space_sampling=False, box_warp=1, clamp_mode='softplus')


def test_plane_projections_are_eg3ds():
    p = torch.tensor([[[0.1, 0.2, 0.3]]])
    proj = project_onto_planes(generate_planes(), p)
    # xy, xz and (EG3D's third plane) zx.
    np.testing.assert_allclose(proj[:, 0].numpy(), [[0.1, 0.2], [0.1, 0.3], [0.3, 0.1]], rtol=1e-6)


def test_bilinear_plane_sampling_reproduces_a_ramp():
    W = 16
    ramp = torch.arange(W, dtype=torch.float32).expand(W, W)  # value = column index
    planes = torch.stack([ramp, ramp.t(), torch.zeros(W, W)])[None, :, None]  # (1, 3, 1, W, W)
    torch.manual_seed(0)
    coords = (torch.rand(1, 50, 3) - 0.5) * 1.6  # inside the box (box_warp 2 maps [-1, 1] onto the planes)
    features = sample_from_planes(generate_planes(), planes, coords, box_warp=2)
    assert features.shape == (1, 3, 50, 1)
    to_pixels = lambda g: ((g + 1) * W - 1) / 2  # align_corners=False
    np.testing.assert_allclose(features[0, 0, :, 0].numpy(), to_pixels(coords[0, :, 0]).numpy(), atol=1e-4)
    np.testing.assert_allclose(features[0, 1, :, 0].numpy(), to_pixels(coords[0, :, 2]).numpy(), atol=1e-4)
    far = sample_from_planes(generate_planes(), planes, torch.full((1, 1, 3), 5.0), box_warp=2)
    assert torch.all(far == 0)  # zero padding outside the box


@pytest.mark.parametrize('disparity', [False, True])
def test_stratified_samples_fall_in_their_bins(disparity):
    torch.manual_seed(0)
    depths = ImportanceRenderer().sample_stratified(torch.zeros(2, 30, 3), 2.0, 4.0, 5, disparity)
    assert depths.shape == (2, 30, 5, 1)
    k = torch.arange(5).reshape(1, 1, 5, 1)
    if disparity:  # evenly spaced in inverse depth: 1/d = (1 - s)/2 + s/4 with s in [k/4, (k+1)/4)
        s = (1 / depths - 1 / 2.0) / (1 / 4.0 - 1 / 2.0)
        assert torch.all(s >= k / 4 - 1e-6) and torch.all(s < (k + 1) / 4 + 1e-6)
    else:
        assert torch.all(depths >= 2 + 0.5 * k) and torch.all(depths < 2 + 0.5 * (k + 1))


def test_pdf_sampling_inverts_the_cdf():
    r = ImportanceRenderer()
    bins = torch.linspace(0, 1, 5).expand(2, 5)
    uniform = r.sample_pdf(bins, torch.ones(2, 4), 9, det=True)
    np.testing.assert_allclose(uniform.numpy(), torch.linspace(0, 1, 9).expand(2, 9).numpy(), atol=1e-5)
    # All the weight in the second bin: every sample lands in [0.25, 0.5].
    peaked = r.sample_pdf(bins, torch.tensor([[0, 1.0, 0, 0]]), 50)
    assert torch.all(peaked >= 0.25 - 1e-3) and torch.all(peaked <= 0.5 + 1e-3)


def _scene(resolution=6):
    torch.manual_seed(0)
    poses = LookAtPoseSampler.sample(math.pi / 2, math.pi / 2, torch.tensor([0, 0, 0.2]), horizontal_stddev=0.3,
                                     radius=2.7, batch_size=2)
    origins, dirs = RaySampler()(poses, FOV_to_intrinsics(18.837).expand(2, 3, 3), resolution)
    planes = torch.randn(2, 3, 32, 16, 16) * 2
    decoder = OSGDecoder(32, {'decoder_lr_mul': 1, 'decoder_output_dim': 32})
    return planes, decoder, origins, dirs


@pytest.mark.parametrize('options', [
    OPTIONS,
    dict(OPTIONS, disparity_space_sampling=True),
    dict(OPTIONS, depth_resolution_importance=0),
    dict(OPTIONS, ray_start='auto', ray_end='auto', box_warp=1.5),
    dict(OPTIONS, density_noise=0.5),
])
def test_render_is_consistent_and_chunkable(options):
    planes, decoder, origins, dirs = _scene()
    renderer = ImportanceRenderer()
    with torch.no_grad():
        torch.manual_seed(7)
        rgb, depth, weight = renderer(planes, decoder, origins, dirs, options)
        torch.manual_seed(7)
        chunked = renderer(planes, decoder, origins, dirs, options, ray_chunk_size=5)
    assert rgb.shape == (2, 36, 32) and depth.shape == weight.shape == (2, 36, 1)
    assert torch.all(weight >= 0) and torch.all(weight <= 1 + 1e-6)
    if options['ray_start'] == 'auto':  # samples stay inside the box_warp cube
        points = origins + depth * dirs
        assert points.abs().max() <= options['box_warp'] / 2 + 0.1
    else:
        assert depth.min() >= options['ray_start'] and depth.max() <= options['ray_end'] * 1.0001
    for a, b in zip((rgb, depth, weight), chunked):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-5)


def test_density_noise_is_drawn_after_the_jitter():
    """run_model adds `density_noise` x N(0, 1) to sigma; with the noise pre-drawn it adds exactly that."""
    planes, decoder, origins, dirs = _scene()
    renderer = ImportanceRenderer()
    coords, d = origins[:, :4] + 2.7 * dirs[:, :4], dirs[:, :4]
    with torch.no_grad():
        clean = renderer.run_model(planes, decoder, coords, d, OPTIONS)
        noise = torch.randn(2, 4, 1)
        noisy = renderer.run_model(planes, decoder, coords, d, dict(OPTIONS, density_noise=0.5), density_noise=noise)
    np.testing.assert_allclose(noisy['sigma'].numpy(), (clean['sigma'] + 0.5 * noise).numpy(), atol=1e-6)


def test_bad_input():
    planes, decoder, origins, dirs = _scene()
    renderer = ImportanceRenderer()
    for bad_chunk in (-1, 2.5, True):
        with pytest.raises(ValueError, match='ray_chunk_size must be an int >= 0'):
            renderer(planes, decoder, origins, dirs, OPTIONS, ray_chunk_size=bad_chunk)
    with pytest.raises(ValueError, match=r'ray_directions must have shape \(2, 36, 3\)'):
        renderer(planes, decoder, origins, dirs[:, :5], OPTIONS)
    with pytest.raises(ValueError, match=r'planes must have shape \(2, 3, N, N, N\)'):
        renderer(planes[:, :2], decoder, origins, dirs, OPTIONS)
    with pytest.raises(ValueError, match='padding_mode'):
        sample_from_planes(generate_planes(), planes, origins, padding_mode='border', box_warp=1)


def test_render_gradients_in_float64():
    """First and second derivatives of the composited colour and depth with respect to the planes
    (the coarse pass only: importance samples are detached by design, as in EG3D)."""
    torch.manual_seed(0)
    decoder = OSGDecoder(1, {'decoder_lr_mul': 1, 'decoder_output_dim': 2}).double()
    origins = torch.tensor([[[0.05, -0.1, 2.7], [0.1, 0.05, 2.7]]], dtype=torch.float64)
    dirs = torch.tensor([[[0, 0, -1.0], [0.05, -0.02, -1.0]]], dtype=torch.float64)
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    options = dict(OPTIONS, depth_resolution=3, depth_resolution_importance=0)
    renderer = ImportanceRenderer()

    def render(planes):
        torch.manual_seed(3)  # the same jitter in every evaluation
        rgb, depth, weight = renderer(planes, decoder, origins, dirs, options)
        return rgb, depth, weight

    planes = torch.randn(1, 3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(render, (planes,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(render, (planes,), eps=1e-6, atol=1e-4)


@pytest.mark.parametrize('resolution', [8, 16])
def test_chunking_bounds_the_per_sample_working_set(resolution):
    """The per-sample tensors (features of every sample of every ray: the bulk of the renderer's
    memory) never hold more than `ray_chunk_size` rays, whatever the resolution."""
    planes, decoder, origins, dirs = _scene(resolution)
    seen = []

    def spy(features, directions):
        seen.append(features.shape[2])  # samples decoded in this call, (N, 3, M, C)
        return decoder(features, directions)

    with torch.no_grad():
        ImportanceRenderer()(planes, spy, origins, dirs, OPTIONS, ray_chunk_size=10)
    assert max(seen) == 10 * OPTIONS['depth_resolution']  # coarse pass of a full chunk
    n_chunks = math.ceil(resolution ** 2 / 10)
    assert len(seen) == 2 * n_chunks  # coarse + importance pass per chunk
    assert sum(seen) == resolution ** 2 * (OPTIONS['depth_resolution'] + OPTIONS['depth_resolution_importance'])


def test_default_chunk_bounds_memory_and_matches_all_rays_at_once():
    """Without a ray_chunk_size the renderer decodes at most DEFAULT_RAY_CHUNK_SIZE rays per pass, and
    the result equals the all-rays-at-once render (ray_chunk_size=0, EG3D's way) within 1e-5."""
    planes, decoder, origins, dirs = _scene(resolution=48)  # 2 x 2304 rays: more than one default chunk
    seen = []

    def spy(features, directions):
        seen.append(directions.shape[1])
        return decoder(features, directions)

    renderer = ImportanceRenderer()
    with torch.no_grad():
        torch.manual_seed(3)
        bounded = renderer(planes, spy, origins, dirs, OPTIONS)
        torch.manual_seed(3)
        unbounded = renderer(planes, decoder, origins, dirs, OPTIONS, ray_chunk_size=0)
    assert max(seen) == DEFAULT_RAY_CHUNK_SIZE * OPTIONS['depth_resolution']
    assert len(seen) == 2 * math.ceil(48 ** 2 / DEFAULT_RAY_CHUNK_SIZE)  # coarse + importance pass per chunk
    max_abs = max((a - b).abs().max().item() for a, b in zip(bounded, unbounded))
    assert max_abs < 1e-5, f'default chunking changed the render by {max_abs:.2e}'
