"""Training benchmarks: seconds per iteration and peak memory of train.py's loop, and how far each
choice of trained parts moves the densities away from the source generator.

speed: trains `--iters` iterations of a preset (random-weight networks, random-weight perceptual
networks) on a synthetic style set made on the fly at the preset's resolution, one tick per
iteration; reports the median seconds per iteration after the first (warm-up) one, the peak CPU
resident set size and, on a GPU, the peak allocated GPU memory.

geometry: from one random tiny generator, trains each configuration (pstyle with several part
lists, finetune) for `--iters` steps of the content + style losses and prints the style loss of the
first and last step and the mean |sigma_G - sigma_src| at 2000 random points.

Examples:

    python -m bench.bench_training speed --cfg=tiny --iters=12
    python -m bench.bench_training speed --cfg=ffhq512 --batch=4 --iters=300   # on a GPU
    python -m bench.bench_training geometry --iters=4 --lr=1e-4
"""

import copy
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from typing import Optional

import click
import torch

import configs
import dnnlib
import train
from dataset_preprocessing.synthetic_heads import make_synthetic_dataset
from training import trainable, training_loop
from training.domain_adaptation import add_domain
from training.loss import PStyleLoss
from training.perceptual import VGG19Features

GEOMETRY_CONFIGS = (('pstyle', 'backbone.synthesis,superresolution,dam,encoder'),
                    ('pstyle', 'superresolution,dam,encoder'),
                    ('pstyle', 'dam,encoder'),
                    ('finetune', 'backbone,decoder,superresolution'))


def _style_set(folder: str, resolution: int, count: int) -> str:
    return make_synthetic_dataset(os.path.join(folder, 'toon.zip'), 'toon', count, resolution=resolution)


def _progress(*args) -> None:
    """The training loop's progress lines, on stderr: a run cut short by a time limit still shows how far it got."""
    print(*args, file=sys.stderr, flush=True)


@click.group()
def main():
    """Training benchmarks (see the module docstring)."""


@main.command()
@click.option('--cfg', help='Preset', default='tiny', show_default=True)
@click.option('--iters', help='Iterations (the first is warm-up)', type=click.IntRange(min=2), default=12,
              show_default=True)
@click.option('--batch', help="Images per iteration  [default: the preset's]", type=click.IntRange(min=1),
              metavar='INT')
def speed(cfg: str, iters: int, batch: Optional[int]):
    """Seconds per iteration and peak memory of the training loop."""
    preset = configs.load_preset(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        data = _style_set(tmp, preset.G_kwargs['img_resolution'], count=8)
        _progress(f'style set made in {time.time() - start:.1f} s')
        args = ['--outdir', tmp, '--cfg', cfg, '--data', data, '--domain', 'synthetic', '--random-perceptual',
                '--snap', str(10 * iters), '--img-snap', str(10 * iters), '--workers', '0',
                *(['--batch', str(batch)] if batch else [])]
        images = train.main.make_context('train.py', list(args)).params['batch']
        # One tick (one stats record) per iteration; given on the command line, since the presets
        # replace options left at their defaults.
        ctx = train.main.make_context('train.py', [*args, '--kimg', str(iters * images / 1000),
                                                   '--tick', str(images / 1000)])
        c, _ = train.validate_and_build(train.apply_presets(ctx, ctx.params))
        c.run_dir = os.path.join(tmp, 'run')
        os.makedirs(c.run_dir)
        training_loop.training_loop(rank=0, print_fn=_progress, **train.loop_arguments(c, rank=0))
        records = [json.loads(line) for line in open(os.path.join(c.run_dir, 'stats.jsonl'))]
    sec = statistics.median(r['Timing/sec_per_iter'] for r in records[1:])
    gpu = max(r['Resources/peak_gpu_mem_gb'] for r in records)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f'CPU, {torch.get_num_threads()} threads'
    print(f'{cfg}, batch {images}: {sec:.3f} s/iter (median of {len(records) - 1} after warm-up), '
          f'peak RSS {rss:.2f} GB, peak GPU memory {gpu:.2f} GB; {device}')


@main.command()
@click.option('--iters', help='Steps per configuration', type=click.IntRange(min=1), default=4, show_default=True)
@click.option('--lr', help='Adam learning rate', type=float, default=1e-4, show_default=True)
def geometry(iters: int, lr: float):
    """Density change vs the source for pstyle part lists and finetune (tiny preset)."""
    preset = configs.load_preset('tiny')
    torch.manual_seed(0)
    G_src = dnnlib.util.construct_class_by_name(**preset.G_kwargs).eval().requires_grad_(False)
    D = dnnlib.util.construct_class_by_name(**preset.D_kwargs)
    vgg = VGG19Features(allow_random_weights=True)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = dnnlib.util.construct_class_by_name(class_name='training.dataset.ImageFolderDataset',
                                                      path=_style_set(tmp, 128, count=6), use_labels=True)
        items = [dataset[i] for i in range(len(dataset))]
    exemplars = torch.stack([torch.as_tensor(img) for img, _ in items]).float() / 127.5 - 1
    cams = torch.stack([torch.as_tensor(label) for _, label in items])
    gen = torch.Generator().manual_seed(1)
    ws = G_src.mapping(torch.randn([len(items), G_src.z_dim], generator=gen), cams, truncation_psi=0.7)
    coords = torch.rand([1, 2000, 3], generator=gen) * 2 - 1
    for method, parts in GEOMETRY_CONFIGS:
        G = add_domain(G_src, 'synthetic', preset.domain_kwargs) if method == 'pstyle' else copy.deepcopy(G_src)
        G.train()
        if G.encoder is not None:
            G.encoder.eval()
        params = [p for _, p in trainable.select_parameters(G, trainable.parse_parts(parts))]
        G.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=lr, betas=(0.0, 0.99))
        loss = PStyleLoss(G=G, D=D, G_src=G_src, vgg=vgg, arcface=None, use_domain=method == 'pstyle', adv_weight=0,
                          id_weight=0, density_reg=0, r1_gamma=0, neural_rendering_resolution=32,
                          perceptual_resolution=64)
        styles = []
        for step in range(iters):
            i = step % len(items)
            opt.zero_grad(set_to_none=True)
            stats, _ = loss.accumulate_gradients('Gmain', exemplars[i:i + 1], cams[i:i + 1], ws[i:i + 1].detach(),
                                                 cams[i:i + 1])
            opt.step()
            styles.append(float(stats['Loss/G/style']))
        domain = dict(domain=exemplars[:1]) if method == 'pstyle' else dict()
        with torch.no_grad():
            sigma = G.sample_mixed(coords, torch.zeros_like(coords), ws[:1], **domain)['sigma']
            sigma_src = G_src.sample_mixed(coords, torch.zeros_like(coords), ws[:1])['sigma']
        gap = float((sigma - sigma_src).abs().mean())
        print(f'{method:8s} --train={parts:45s} style {styles[0]:.4f} -> {styles[-1]:.4f}  density gap {gap:.4f}')


if __name__ == '__main__':
    main()
