"""The fused volume-rendering op (torch_utils/ops/volume_render) against the pure-PyTorch
ImportanceRenderer it replaces: same random numbers in, the same features, depths, weights, importance
samples and gradients out (within float rounding). The op is CPU-only: CUDA tensors take the reference."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from camera_utils import FOV_to_intrinsics, LookAtPoseSampler
from torch_utils import custom_ops
from torch_utils.ops import volume_render
from training.triplane import OSGDecoder
from training.volumetric_rendering.ray_sampler import RaySampler
from training.volumetric_rendering.renderer import ImportanceRenderer, generate_planes, osg_decoder_weights

OPTIONS = dict(ray_start=2.25, ray_end=3.3, depth_resolution=8, depth_resolution_importance=6,
               disparity_space_sampling=False, box_warp=1, clamp_mode='softplus')
FFHQ512 = json.loads(
    (Path(__file__).parents[3] / 'configs' / 'ffhq512.json').read_text())['G_kwargs']['rendering_kwargs']


def _scene(resolution=6, plane_size=16, batch=2, lr_mul=1.0, seed=0):
    """Planes (batch, 3, 32, S, S), an OSGDecoder with EG3D's sizes, rays (batch, resolution^2, 3) of
    cameras around the head like FFHQ's."""
    torch.manual_seed(seed)
    poses = LookAtPoseSampler.sample(math.pi / 2, math.pi / 2, torch.tensor([0, 0, 0.2]), horizontal_stddev=0.3,
                                     radius=2.7, batch_size=batch)
    origins, dirs = RaySampler()(poses, FOV_to_intrinsics(18.837).expand(batch, 3, 3), resolution)
    planes = torch.randn(batch, 3, 32, plane_size, plane_size) * 2
    decoder = OSGDecoder(32, {'decoder_lr_mul': lr_mul, 'decoder_output_dim': 32})
    with torch.no_grad():  # biases away from 0, so that a wrong bias gain shows
        for p in decoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return planes, decoder, origins, dirs


def _render(planes, decoder, origins, dirs, options, impl, chunk=None):
    torch.manual_seed(7)
    return ImportanceRenderer()(planes, decoder, origins, dirs, dict(options, impl=impl), ray_chunk_size=chunk)


def _max_abs(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def test_plugin_builds():
    # If this fails, every impl='cuda' render below silently compares the reference with itself.
    assert volume_render._plugin() is not None
    assert volume_render.is_available(torch.zeros(1, 3, 2, 2, 2))


def test_is_available_only_for_cpu_float_tensors(monkeypatch):
    # What custom_ops reports for a plugin without CUDA sources, also on a CUDA machine.
    monkeypatch.setattr(volume_render, '_plugin', lambda: SimpleNamespace(ops=None, devices={'cpu'}))
    assert volume_render.is_available(torch.zeros(1, 3, 2, 2, 2))
    assert volume_render.is_available(torch.zeros(1, 3, 2, 2, 2, dtype=torch.float64))
    assert not volume_render.is_available(torch.zeros(1, 3, 2, 2, 2, dtype=torch.float16))
    assert not volume_render.is_available(torch.zeros(1, 3, 2, 2, 2, device='meta'))
    assert not volume_render.is_available(SimpleNamespace(device=torch.device('cuda', 0), dtype=torch.float32))


@pytest.mark.parametrize('options', [
    OPTIONS,
    dict(OPTIONS, disparity_space_sampling=True),
    dict(OPTIONS, depth_resolution_importance=0),
    dict(OPTIONS, ray_start='auto', ray_end='auto', box_warp=1.5),
    dict(OPTIONS, density_noise=0.5, white_back=True),
], ids=['default', 'disparity', 'coarse_only', 'auto_limits', 'noise_white_back'])
def test_fused_render_equals_reference(options):
    scene = _scene()
    with torch.no_grad():
        ref = _render(*scene, options, 'ref')
        fused = _render(*scene, options, 'cuda')
        fused_chunked = _render(*scene, options, 'cuda', chunk=5)
    assert all(a.shape == b.shape for a, b in zip(ref, fused))
    assert _max_abs(ref, fused) <= 1e-5
    assert _max_abs(fused, fused_chunked) <= 1e-5


def test_fused_render_equals_reference_at_ffhq512_sizes():
    """EG3D's FFHQ-512 rendering options (48 + 48 samples, its box and depth range), decoder sizes
    32 -> 64 -> 33 and 64 x 64 planes; also the op's coarse weights and importance samples against the
    renderer's ray marcher and sample_importance given the same uniforms."""
    planes, decoder, origins, dirs = _scene(resolution=12, plane_size=64, batch=1)
    options = {k: FFHQ512[k] for k in ('ray_start', 'ray_end', 'depth_resolution', 'depth_resolution_importance',
                                       'disparity_space_sampling', 'box_warp', 'clamp_mode')}
    with torch.no_grad():
        ref = _render(planes, decoder, origins, dirs, options, 'ref')
        fused = _render(planes, decoder, origins, dirs, options, 'cuda')
        assert _max_abs(ref, fused) <= 1e-5

        renderer = ImportanceRenderer()
        N, R, _ = origins.shape
        depths = renderer.sample_stratified(origins, options['ray_start'], options['ray_end'], 48)
        uniforms = torch.rand(N, R, 48)
        out = volume_render.render_rays(volume_render.planes_channels_last(planes), osg_decoder_weights(decoder),
                                        renderer.plane_axes, origins, dirs, depths, options['box_warp'],
                                        uniforms=uniforms)
        points = (origins.unsqueeze(-2) + depths * dirs.unsqueeze(-2)).reshape(N, -1, 3)
        decoded = renderer.run_model(planes, decoder, points, dirs.repeat_interleave(48, 1), options)
        colors, densities = decoded['rgb'].reshape(N, R, 48, -1), decoded['sigma'].reshape(N, R, 48, 1)
        _, _, coarse_weights = renderer.ray_marcher(colors, densities, depths, options, clamp_depth=False)
        fine = renderer.sample_importance(depths, coarse_weights, 48, uniforms=uniforms)
    assert (out.coarse_weights - coarse_weights).abs().max() <= 1e-5
    assert (out.depths_fine - fine).abs().max() <= 1e-5


@pytest.mark.parametrize('options', [OPTIONS, dict(OPTIONS, density_noise=0.5, white_back=True)],
                         ids=['default', 'noise_white_back'])
def test_fused_gradients_equal_reference(options):
    """First-order gradients of colour, depth and weight sum for the planes and every decoder parameter
    (with a decoder_lr_mul, so that the layers' gains count)."""
    planes, decoder, origins, dirs = _scene(lr_mul=0.5)
    planes.requires_grad_(True)
    torch.manual_seed(11)
    out_grads = [torch.randn(2, 36, 32), torch.randn(2, 36, 1), torch.randn(2, 36, 1)]
    grads = {}
    for impl in ('ref', 'cuda'):
        outputs = _render(planes, decoder, origins, dirs, options, impl, chunk=20)
        inputs = [planes, *decoder.parameters()]
        grads[impl] = torch.autograd.grad(outputs, inputs, out_grads)
    for ref, fused in zip(grads['ref'], grads['cuda']):
        scale = ref.abs().max().item()
        assert scale > 0
        assert (ref - fused).abs().max().item() <= 1e-5 * max(scale, 1)


def test_fused_gradcheck_in_float64():
    """The compiled backward against finite differences of the compiled forward: planes and decoder
    weights, density noise and a white background (coarse samples only: importance samples are
    detached by design, as in EG3D)."""
    torch.manual_seed(0)
    f64 = dict(dtype=torch.float64)
    planes = torch.randn(1, 3, 4, 5, 5, **f64) * 2
    w1, b1, w2, b2 = torch.randn(6, 4, **f64), torch.randn(6, **f64), torch.randn(3, 6, **f64), torch.randn(3, **f64)
    origins = torch.tensor([[[0.05, -0.1, 2.7], [0.1, 0.05, 2.7], [-0.2, 0.1, 2.7]]], **f64)
    dirs = torch.nn.functional.normalize(torch.tensor([[[0, 0, -1.0], [0.05, -0.02, -1.0], [0.1, 0, -1]]], **f64),
                                         dim=-1)
    depths = (torch.linspace(2.3, 3.2, 7, **f64).reshape(1, 1, 7, 1).repeat(1, 3, 1, 1)
              + 0.05 * torch.rand(1, 3, 7, 1, **f64))
    noise = torch.randn(1, 3, 7, 1, **f64)

    def render(planes_cl, *weights):
        out = volume_render.render_rays(planes_cl, volume_render.DecoderWeights(*weights), generate_planes(), origins,
                                        dirs, depths, 1.0, noise_coarse=noise, density_noise=0.5, white_back=True)
        return out.rgb, out.depth, out.weight_sum

    inputs = [t.requires_grad_() for t in (volume_render.planes_channels_last(planes), w1, b1, w2, b2)]
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6)


def test_double_backward_is_refused_and_the_reference_provides_it():
    # The reference's second derivative runs through grid_sample's backward, which the pinned torch 2.13
    # differentiates (2.11 raised 'derivative for aten::grid_sampler_2d_backward is not implemented').
    planes, decoder, origins, dirs = _scene(resolution=2)
    planes.requires_grad_(True)
    for impl in ('cuda', 'ref'):
        rgb, _, _ = _render(planes, decoder, origins, dirs, OPTIONS, impl)
        (grad,) = torch.autograd.grad(rgb.square().sum(), planes, create_graph=True)
        if impl == 'cuda':
            with pytest.raises(RuntimeError, match='once_differentiable'):
                grad.square().sum().backward()
        else:
            grad.square().sum().backward()
            assert planes.grad.abs().sum() > 0


def test_renderer_chooses_the_fused_op(monkeypatch):
    """Default: the fused op, once per chunk of rays; impl='ref', another decoder or no plugin: the
    reference (the same numbers)."""
    planes, decoder, origins, dirs = _scene()
    calls = []
    real = volume_render.render_rays
    monkeypatch.setattr(volume_render, 'render_rays', lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        fused = _render(planes, decoder, origins, dirs, OPTIONS, 'cuda', chunk=10)
        assert len(calls) == math.ceil(36 / 10)
        ref = _render(planes, decoder, origins, dirs, OPTIONS, 'ref', chunk=10)
        other_decoder = _render(planes, lambda f, d: decoder(f, d), origins, dirs, OPTIONS, 'cuda', chunk=10)
        monkeypatch.setenv(custom_ops.DISABLE_ENV, '1')
        no_plugin = _render(planes, decoder, origins, dirs, OPTIONS, 'cuda', chunk=10)
    assert len(calls) == math.ceil(36 / 10)
    assert _max_abs(fused, ref) <= 1e-5
    assert _max_abs(ref, other_decoder) == 0 and _max_abs(ref, no_plugin) == 0
    with pytest.raises(ValueError, match="impl must be 'ref' or 'cuda'"):
        _render(planes, decoder, origins, dirs, OPTIONS, 'fused')


def test_osg_decoder_weights_apply_the_gains():
    decoder = OSGDecoder(32, {'decoder_lr_mul': 0.25, 'decoder_output_dim': 32})
    w1, b1, w2, b2 = osg_decoder_weights(decoder)
    x = torch.randn(5, 32)
    hidden = torch.nn.functional.softplus(x @ w1.t() + b1)
    np.testing.assert_allclose((hidden @ w2.t() + b2).detach().numpy(), decoder.net(x).detach().numpy(), atol=1e-5)
    assert osg_decoder_weights(torch.nn.Linear(3, 3)) is None
