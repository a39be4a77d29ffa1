"""End-to-end behaviour of training/training_loop.py on the tiny CPU preset (a few iterations each)."""

import json
import math
import os
import tempfile

import numpy as np
import pytest
import torch

import legacy
from tests.helpers_train import build_config, ddp_worker, make_style_dataset
from training import training_loop
from training.loss import adain_style_loss
from training.perceptual import VGG19Features

ITERS = 2  # total_kimg is in thousands of images; batch 1 -> 1 image per iteration
METHOD = 'pstyle'


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
    return make_style_dataset(str(tmp_path_factory.mktemp('style') / 'style'), count=6)


def _config(data_dir, run_dir, *extra, iters=ITERS, tick=1):
    args = ['--outdir', str(run_dir), '--cfg', 'tiny', '--data', data_dir, '--domain', 'synthetic',
            '--random-perceptual', '--kimg', str(iters / 1000), '--tick', str(tick / 1000), '--snap', '100',
            '--img-snap', '100', '--id-weight', '0', '--method', METHOD, *extra]
    c, _ = build_config(args)
    c.run_dir = str(run_dir)
    os.makedirs(c.run_dir, exist_ok=True)
    return c


def _run(c):
    return training_loop.training_loop(rank=0, print_fn=lambda *a: None, **c)


def _load(run_dir):
    names = sorted(f for f in os.listdir(run_dir) if f.startswith('network-snapshot-') and f.endswith('.pkl'))
    return legacy.load_network_pkl(os.path.join(run_dir, names[-1]))


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol=1e-6):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], atol=atol, rtol=0, msg=lambda m: f'{key}: {m}')


def test_resume_continues_exactly_and_snapshot_renders_identically(data_dir, tmp_path):
    full = _run(_config(data_dir, tmp_path / 'full'))
    assert full['iteration'] == ITERS
    _run(_config(data_dir, tmp_path / 'first', iters=ITERS // 2))
    first = _load(tmp_path / 'first')
    assert first['resume_state']['iteration'] == ITERS // 2
    resumed_c = _config(data_dir, tmp_path / 'resumed', '--resume',
                        os.path.join(tmp_path / 'first', 'network-snapshot-000000.pkl'))
    resumed = _run(resumed_c)
    assert resumed['iteration'] == ITERS
    for name in ('G', 'D', 'G_ema'):
        _assert_same_weights(full[name], resumed[name])
    # Training moved the weights: the comparison above is not vacuous.
    diff = max((p - q).abs().max().item() for p, q in zip(full['G'].parameters(), first['G'].parameters()))
    assert diff > 1e-7

    # The final snapshot reloads through the safe loader and renders what the live G_ema renders.
    snap = _load(tmp_path / 'full')
    assert snap['resume_state']['iteration'] == ITERS
    G_live, G_snap = full['G_ema'], snap['G_ema']
    ws = torch.randn([1, G_live.backbone.num_ws, G_live.w_dim], generator=torch.Generator().manual_seed(5))
    c = torch.tensor([json.load(open(os.path.join(data_dir, 'dataset.json')))['labels'][0][1]])
    outs = []
    for G in (G_live, G_snap):
        torch.manual_seed(11)
        with torch.no_grad():
            outs.append(G.synthesis(ws, c, noise_mode='const', neural_rendering_resolution=32))
    for key in ('image', 'image_raw', 'image_depth'):
        torch.testing.assert_close(outs[0][key], outs[1][key], atol=0, rtol=0)

    # Outputs of a run: grids, options, finite statistics.
    run_files = os.listdir(tmp_path / 'full')
    assert {'fakes_init.png', 'fakes000000.png', 'stats.jsonl'} <= set(run_files)
    records = [json.loads(line) for line in open(tmp_path / 'full' / 'stats.jsonl')]
    assert [r['Progress/iteration'] for r in records] == [1, 2]
    for record in records:
        for name, value in record.items():
            if name.startswith('Loss/'):
                assert math.isfinite(value['mean']), name


def test_two_cpu_processes_end_with_identical_weights(data_dir, tmp_path):
    c = _config(data_dir, tmp_path / 'run', '--gpus', '2', '--batch', '2', iters=4, tick=4)
    with tempfile.TemporaryDirectory() as temp_dir:
        torch.multiprocessing.spawn(ddp_worker, args=(c, temp_dir, str(tmp_path)), nprocs=2)
    rank0 = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    rank1 = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], atol=0, rtol=0, msg=lambda m: f'{key}: {m}')
    # Two iterations of batch 2 ran (each rank one exemplar per iteration), and weights moved.
    snap = _load(tmp_path / 'run')
    assert snap['resume_state']['iteration'] == 2 and len(snap['resume_state']['rng']) == 2


def _eval_inputs(c, data_dir):
    """Fixed evaluation batch: the first 2 exemplars, 2 content latents at their cameras."""
    labels = json.load(open(os.path.join(data_dir, 'dataset.json')))['labels'][:2]
    import PIL.Image
    images = np.stack([np.array(PIL.Image.open(os.path.join(data_dir, name))) for name, _ in labels])
    exemplar = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    cams = torch.tensor([lab for _, lab in labels])
    return exemplar, cams


def _style_loss(G, vgg, ws, cams, exemplar, size, domain):
    torch.manual_seed(0)
    with torch.no_grad():
        img = G.synthesis(ws, cams, noise_mode='const', neural_rendering_resolution=32, **domain)['image']
        resize = lambda x: torch.nn.functional.interpolate(x, size=(size, size), mode='bilinear', antialias=True)
        return float(adain_style_loss(vgg(resize(img)), vgg(resize(exemplar))))


def _density_gap(G, G_src, ws, domain):
    gen = torch.Generator().manual_seed(3)
    coords = torch.rand([ws.shape[0], 2000, 3], generator=gen) * 2 - 1
    dirs = torch.randn([ws.shape[0], 2000, 3], generator=gen)
    with torch.no_grad():
        sigma = G.sample_mixed(coords, dirs, ws, **domain)['sigma']
        sigma_src = G_src.sample_mixed(coords, dirs, ws)['sigma']
    return float((sigma - sigma_src).abs().mean())


def test_style_loss_falls_and_pstyle_keeps_geometry_closer_than_finetune(data_dir, tmp_path):
    # Style-driven updates only (no D, no regularisers) with a large lr, so 4 iterations show the trend.
    style_only = ['--adv', '0', '--content-weight', '0', '--density-reg', '0', '--gamma', '0', '--glr', '2e-3']
    runs = {}
    for method, parts in (('pstyle', 'backbone.synthesis,superresolution,dam,encoder'),
                          ('finetune', 'backbone,decoder,superresolution')):
        c = _config(data_dir, tmp_path / method, *style_only, '--method', method, '--train', parts, iters=4, tick=4)
        runs[method] = (c, _run(c))
    c, pstyle = runs['pstyle']
    vgg, _ = training_loop.build_perceptual(c.perceptual_kwargs, torch.device('cpu'), need_identity=False)
    G_src = pstyle['G_src']
    exemplar, cams = _eval_inputs(c, data_dir)
    z = torch.randn([2, 512], generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ws = G_src.mapping(z, cams, truncation_psi=0.7)
    size = c.loss_kwargs['perceptual_resolution']
    before = _style_loss(G_src, vgg, ws, cams, exemplar, size, {})
    after = _style_loss(pstyle['G'], vgg, ws, cams, exemplar, size, dict(domain=exemplar))
    assert after < 0.8 * before, (before, after)
    # The stored mean code renders the style without exemplars too.
    after_named = _style_loss(pstyle['G'], vgg, ws, cams, exemplar, size, dict(domain='synthetic'))
    assert after_named < before, (before, after_named)

    gap_pstyle = _density_gap(pstyle['G'], G_src, ws, dict(domain=exemplar))
    gap_finetune = _density_gap(runs['finetune'][1]['G'], runs['finetune'][1]['G_src'], ws, {})
    assert gap_pstyle < gap_finetune, (gap_pstyle, gap_finetune)
