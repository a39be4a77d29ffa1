"""TriPlaneGenerator: EG3D parity on the tiny reference network, the FFHQ-512 layout, chunked
rendering and input validation."""

import numpy as np
import pytest
import torch

import dnnlib
from camera_utils import FOV_to_intrinsics, LookAtPoseSampler, camera_label
from training.triplane import TriPlaneGenerator, split_planes
from training.volumetric_rendering import renderer as renderer_module

TOL = dict(atol=1e-4, rtol=1e-4)  # the fixture README's tolerances


def _close(actual: torch.Tensor, expected: np.ndarray, **tol):
    assert tuple(actual.shape) == expected.shape
    np.testing.assert_allclose(actual.detach().numpy(), expected, **(tol or TOL))


def test_builds_by_name(tiny_G, tiny_config):
    assert type(tiny_G).__name__ == 'TriPlaneGenerator' and isinstance(tiny_G, TriPlaneGenerator)
    assert type(tiny_G.superresolution).__name__ == 'SuperresolutionHybrid2X'
    assert tiny_G.backbone.num_ws == 14


@pytest.mark.parametrize('name,psi,cutoff', [('ws_psi1', 1, None), ('ws_psi07', 0.7, None), ('ws_psi05_cut4', 0.5, 4)])
def test_mapping_matches_eg3d(tiny_G, tiny_io, name, psi, cutoff):
    z, c = torch.from_numpy(tiny_io['z']), torch.from_numpy(tiny_io['c'])
    _close(tiny_G.mapping(z, c, truncation_psi=psi, truncation_cutoff=cutoff), tiny_io[name])


def test_truncation_is_lerp_towards_w_avg(tiny_G, tiny_io):
    z, c = torch.from_numpy(tiny_io['z']), torch.from_numpy(tiny_io['c'])
    w = tiny_G.mapping(z, c)
    w_avg = tiny_G.backbone.mapping.w_avg
    cut = tiny_G.mapping(z, c, truncation_psi=0.25, truncation_cutoff=6)
    np.testing.assert_allclose(cut[:, :6].numpy(), (w_avg + 0.25 * (w[:, :6] - w_avg)).numpy(), atol=1e-5)
    np.testing.assert_array_equal(cut[:, 6:].numpy(), w[:, 6:].numpy())
    np.testing.assert_allclose(tiny_G.mapping(z, c, truncation_psi=0).numpy(),
                               w_avg.expand_as(w).numpy(), atol=1e-6)


def test_backbone_planes_match_eg3d(tiny_planes, tiny_io):
    _close(tiny_planes[:, :, ::4, ::4], tiny_io['planes_every4th'])
    _close(tiny_planes.mean(dim=[2, 3]), tiny_io['planes_channel_mean'])
    _close(tiny_planes.std(dim=[2, 3]), tiny_io['planes_channel_std'])


def test_ray_sampler_matches_eg3d(tiny_G, tiny_io):
    c = torch.from_numpy(tiny_io['c'])
    origins, directions = tiny_G.ray_sampler(c[:, :16].view(-1, 4, 4), c[:, 16:].view(-1, 3, 3), 16)
    _close(origins, tiny_io['ray_origins_16'])
    _close(directions, tiny_io['ray_directions_16'])


def test_run_model_matches_eg3d(tiny_G, tiny_planes, tiny_io):
    out = tiny_G.decode_planes(split_planes(tiny_planes), torch.from_numpy(tiny_io['sample_coordinates']),
                               torch.from_numpy(tiny_io['sample_directions']))
    _close(out['rgb'], tiny_io['run_model_rgb'])
    _close(out['sigma'], tiny_io['run_model_sigma'])


def _seeded_synthesis(G, planes, ws, c, **kwargs):
    """G.synthesis right after torch.manual_seed(1234), reusing the precomputed planes (the backbone
    draws no random numbers with noise_mode='const', so the random stream is EG3D's)."""
    torch.manual_seed(1234)
    with torch.no_grad():
        return G.synthesis(ws, c, neural_rendering_resolution=32, noise_mode='const', planes=split_planes(planes),
                           **kwargs)


def test_planes_api_renders_what_synthesis_renders(tiny_G, tiny_planes, tiny_io):
    ws, c = torch.from_numpy(tiny_io['ws_psi07']), torch.from_numpy(tiny_io['c'])
    with torch.no_grad():
        planes = tiny_G.synthesize_planes(ws, noise_mode='const')
    assert planes.shape == (2, 3, 32, 256, 256)
    assert torch.equal(planes.reshape(2, 96, 256, 256), tiny_planes)  # the xy, xz, zy planes in channel order
    torch.manual_seed(1234)
    with torch.no_grad():
        full = tiny_G.synthesis(ws, c, neural_rendering_resolution=32, noise_mode='const')
    from_planes = _seeded_synthesis(tiny_G, tiny_planes, ws, c)
    for key in ('image', 'image_raw', 'image_depth'):
        assert torch.equal(full[key], from_planes[key]), key
    # EG3D's in-class cache gives the same picture.
    torch.manual_seed(1234)
    with torch.no_grad():
        tiny_G.synthesis(ws, c, neural_rendering_resolution=32, noise_mode='const', cache_backbone=True)
        torch.manual_seed(1234)
        cached = tiny_G.synthesis(ws, c, neural_rendering_resolution=32, noise_mode='const', use_cached_backbone=True)
    assert torch.equal(cached['image'], full['image'])
    with pytest.raises(ValueError, match=r'planes must have shape \(2, 3, 32, N, N\)'):
        tiny_G.synthesis(ws, c, planes=planes[:1])
    with pytest.raises(ValueError, match=r'backbone output must have 4 dimensions \(N, 96, N, N\)'):
        split_planes(planes)


def test_seeded_synthesis_matches_eg3d(tiny_G, tiny_planes, tiny_io):
    out = _seeded_synthesis(tiny_G, tiny_planes, torch.from_numpy(tiny_io['ws_psi07']), torch.from_numpy(tiny_io['c']))
    _close(out['image'], tiny_io['synthesis_image'], atol=2e-3, rtol=1e-4)
    _close(out['image_raw'], tiny_io['synthesis_image_raw'])
    _close(out['image_depth'], tiny_io['synthesis_image_depth'])
    rk = tiny_G.rendering_kwargs
    assert out['image_depth'].min() >= rk['ray_start'] and out['image_depth'].max() <= rk['ray_end'] + 1e-6


@pytest.mark.parametrize('chunk', [100, 1000, 5000])
def test_chunked_rendering_is_identical(tiny_G, tiny_planes, tiny_io, chunk):
    """Same random numbers, same samples, same pixels. Only the last float bit may differ: PyTorch's
    CPU softplus/exp kernels round the scalar tail of each vectorised loop differently, and where the
    tails fall depends on the tensor size. A misaligned random draw would differ by ~0.1."""
    ws, c = torch.from_numpy(tiny_io['ws_psi07']), torch.from_numpy(tiny_io['c'])
    full = _seeded_synthesis(tiny_G, tiny_planes, ws, c, ray_chunk_size=0)  # all rays at once, as EG3D
    chunked = _seeded_synthesis(tiny_G, tiny_planes, ws, c, ray_chunk_size=chunk)
    for key in ('image', 'image_raw', 'image_depth'):
        np.testing.assert_allclose(chunked[key].numpy(), full[key].numpy(), rtol=0, atol=1e-5, err_msg=key)


def test_default_arguments_bound_memory_within_1e5_of_eg3ds_path(tiny_G, tiny_planes, tiny_io, monkeypatch):
    """With no ray_chunk_size anywhere the renderer's default chunk applies (made smaller than the tiny
    render's 2 x 1024 rays here so that it chunks), and the super-resolved image stays within 1e-5 of
    the all-rays-at-once render."""
    monkeypatch.setattr(renderer_module, 'DEFAULT_RAY_CHUNK_SIZE', 300)
    monkeypatch.setitem(tiny_G.rendering_kwargs, 'impl', 'ref')  # the hook counts the reference's decoder calls
    ws, c = torch.from_numpy(tiny_io['ws_psi07']), torch.from_numpy(tiny_io['c'])
    calls = []
    hook = tiny_G.decoder.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape))
    try:
        bounded = _seeded_synthesis(tiny_G, tiny_planes, ws, c)
    finally:
        hook.remove()
    assert len(calls) == 2 * 4  # coarse + importance pass for each of ceil(1024 / 300) chunks
    unbounded = _seeded_synthesis(tiny_G, tiny_planes, ws, c, ray_chunk_size=0)
    for key in ('image', 'image_raw', 'image_depth'):
        max_abs = (bounded[key] - unbounded[key]).abs().max().item()
        assert max_abs < 1e-5, f'{key}: default chunking changed it by {max_abs:.2e}'


def test_chunk_size_from_rendering_kwargs(tiny_G, tiny_planes, tiny_io):
    ws, c = torch.from_numpy(tiny_io['ws_psi07']), torch.from_numpy(tiny_io['c'])
    tiny_G.rendering_kwargs['ray_chunk_size'] = 100
    try:
        chunked = _seeded_synthesis(tiny_G, tiny_planes, ws, c)
    finally:
        del tiny_G.rendering_kwargs['ray_chunk_size']
    np.testing.assert_allclose(chunked['image_raw'].numpy(),
                               _seeded_synthesis(tiny_G, tiny_planes, ws, c)['image_raw'].numpy(), rtol=0, atol=1e-5)


def test_sample_mixed_is_run_model_on_the_planes(tiny_G, tiny_planes, tiny_io):
    ws = torch.from_numpy(tiny_io['ws_psi07'])
    coords = torch.from_numpy(tiny_io['sample_coordinates'][:, :50])
    dirs = torch.from_numpy(tiny_io['sample_directions'][:, :50])
    out = tiny_G.sample_mixed(coords, dirs, ws, noise_mode='const')
    _close(out['sigma'], tiny_io['run_model_sigma'][:, :50])
    _close(out['rgb'], tiny_io['run_model_rgb'][:, :50])


def test_bad_input_names_the_expected_shape(tiny_G, tiny_io):
    z, c = torch.from_numpy(tiny_io['z']), torch.from_numpy(tiny_io['c'])
    ws = torch.from_numpy(tiny_io['ws_psi07'])
    with pytest.raises(ValueError, match=r'camera label c must be \(2, 25\): 16 numbers of the cam2world '
                                         r'matrix then 9 of the intrinsics; got \(2, 16\)'):
        tiny_G.mapping(z, c[:, :16])
    with pytest.raises(ValueError, match=r'camera label c must be \(2, 25\).*got \(3, 25\)'):
        tiny_G.mapping(z, torch.cat([c, c[:1]]))
    with pytest.raises(ValueError, match=r'latent z must be \(N, 512\); got \(2, 256\)'):
        tiny_G(z[:, :256], c)
    with pytest.raises(ValueError, match='latent z contains NaN'):
        tiny_G.mapping(torch.where(z > 2, float('nan'), z), c)
    with pytest.raises(ValueError, match='camera label c contains NaN or Inf'):
        tiny_G.mapping(z, torch.where(c > 2, float('inf'), c))
    with pytest.raises(ValueError, match=r'ws must be \(N, 14, 512\).*got \(2, 13, 512\)'):
        tiny_G.synthesis(ws[:, :13], c)
    with pytest.raises(ValueError, match=r'camera label c must be \(2, 25\).*got \(2, 9\)'):
        tiny_G.synthesis(ws, c[:, 16:])
    with pytest.raises(ValueError, match='neural_rendering_resolution'):
        tiny_G.synthesis(ws, c, neural_rendering_resolution=0)
    with pytest.raises(ValueError, match=r'camera label c\[0\] is not a usable camera: its rotation'):
        tiny_G.synthesis(ws, torch.zeros_like(c))  # all-zero labels used to render NaN images
    with pytest.raises(ValueError, match=r'coordinates must have shape \(2, N, 3\)'):
        tiny_G.sample_mixed(torch.zeros(2, 5, 2), torch.zeros(2, 5, 2), ws)


def test_missing_rendering_kwargs(tiny_config):
    kwargs = dict(tiny_config['G_kwargs'])
    kwargs['rendering_kwargs'] = {k: v for k, v in kwargs['rendering_kwargs'].items() if k != 'ray_start'}
    with pytest.raises(ValueError, match=r"rendering_kwargs lacks \['ray_start'\]"):
        dnnlib.util.construct_class_by_name(**kwargs)


def test_ffhq512_layout(ffhq512):
    G = dnnlib.util.construct_class_by_name(**ffhq512['G_kwargs'])
    shapes = {k: list(v.shape) for k, v in G.state_dict().items()}
    assert shapes == ffhq512['G_state_shapes']
    assert sum(p.numel() for p in G.parameters()) == ffhq512['G_param_count']


@pytest.mark.slow
def test_ffhq512_renders_on_cpu(ffhq512):
    """A full-size (random-weight) FFHQ generator renders 512x512; the renderer is made cheap
    (neural rendering 16, 6 + 6 depth samples): the backbone and super-resolution run at full size."""
    torch.manual_seed(0)
    kwargs = dnnlib.EasyDict(ffhq512['G_kwargs'])
    kwargs.rendering_kwargs = dict(kwargs.rendering_kwargs, depth_resolution=6, depth_resolution_importance=6)
    G = dnnlib.util.construct_class_by_name(**kwargs).eval().requires_grad_(False)
    c = camera_label()
    out = G(torch.randn(1, 512), c, neural_rendering_resolution=16, noise_mode='const')
    assert out['image'].shape == (1, 3, 512, 512) and out['image_raw'].shape == (1, 3, 16, 16)
    assert torch.isfinite(out['image']).all()
    assert out['image_depth'].min() >= 2.25 and out['image_depth'].max() <= 3.3
    # Raw RGB is the composited sigmoid features mapped to [-1, 1]: it cannot leave [-1.002, 1.002].
    assert out['image_raw'].abs().max() <= 1.002 + 1e-6


@pytest.mark.slow
def test_other_configuration_4x_superresolution():
    """A 256x256 generator (4X super-resolution, narrow channels, disparity-space sampling, no
    pose conditioning of the mapping) renders consistent outputs."""
    torch.manual_seed(0)
    rendering_kwargs = dict(image_resolution=256, disparity_space_sampling=True, clamp_mode='softplus',
                            superresolution_module='training.superresolution.SuperresolutionHybrid4X',
                            c_gen_conditioning_zero=True, c_scale=1.0, superresolution_noise_mode='random',
                            decoder_lr_mul=1.0, sr_antialias=False, depth_resolution=5,
                            depth_resolution_importance=3, ray_start=2.0, ray_end=3.5, box_warp=1.6)
    G = TriPlaneGenerator(z_dim=16, c_dim=25, w_dim=512, img_resolution=256, img_channels=3,
                          mapping_kwargs={'num_layers': 1}, rendering_kwargs=rendering_kwargs,
                          sr_num_fp16_res=0, sr_kwargs={'channel_base': 256, 'channel_max': 8},
                          channel_base=256, channel_max=8, num_fp16_res=0).eval()
    poses = LookAtPoseSampler.sample(np.pi / 2, np.pi / 2, torch.tensor([0, 0, 0.2]), horizontal_stddev=0.3,
                                     radius=2.7, batch_size=2)
    c = torch.cat([poses.reshape(2, 16), FOV_to_intrinsics(18.837).reshape(1, 9).expand(2, 9)], 1)
    z = torch.randn(2, 16)
    with torch.no_grad():
        # c_gen_conditioning_zero: the mapping ignores the camera.
        np.testing.assert_array_equal(G.mapping(z, c).numpy(), G.mapping(z, torch.zeros_like(c)).numpy())
        out = G(z, c, neural_rendering_resolution=8, noise_mode='const')
    assert out['image'].shape == (2, 3, 256, 256) and out['image_raw'].shape == (2, 3, 8, 8)
    assert out['image_depth'].min() >= 2.0 and out['image_depth'].max() <= 3.5 + 1e-5
    assert G.neural_rendering_resolution == 8  # remembered, as in EG3D
    with torch.no_grad():
        again = G(z, c, noise_mode='const')  # uses the remembered resolution
    assert again['image_raw'].shape == (2, 3, 8, 8)
    assert not torch.equal(again['image_raw'], out['image_raw'])  # the depth jitter is random


def test_training_mode_gradients_reach_every_part(tiny_config):
    """In training mode (unfused modulated convolutions, w_avg tracking) a loss on all three outputs
    gives finite, non-zero gradients to the mapping, backbone, decoder and super-resolution."""
    torch.manual_seed(0)
    kwargs = dict(tiny_config['G_kwargs'], channel_base=256, channel_max=8)
    G = dnnlib.util.construct_class_by_name(**kwargs).train()
    c = camera_label().repeat(2, 1)
    w_avg_before = G.backbone.mapping.w_avg.clone()
    out = G(torch.randn(2, 512), c, neural_rendering_resolution=8, update_emas=True)
    (out['image'].square().mean() + out['image_raw'].mean() + out['image_depth'].mean()).backward()
    assert not torch.equal(G.backbone.mapping.w_avg, w_avg_before)
    for name in ('backbone.mapping.fc0.weight', 'backbone.synthesis.b256.conv1.weight', 'decoder.net.0.weight',
                 'superresolution.block1.torgb.weight', 'superresolution.block0.conv0.affine.weight'):
        grad = dict(G.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
