"""Fit a small generator to synthetic heads by multi-view reconstruction: the demo's natural source.

No GAN: every head has a fixed latent (that of `gen_samples.py --seeds=i`), and the generator learns
to render its natural look from several known cameras, with its depth (see training/source_fit.py).
Optionally (from --style-from on) the DAM and a stored domain code also learn the paired toon renders
of the same heads: a supervised baseline, not the method. `--source-only` writes the natural source
as a plain EG3D network, the start of `train.py --method=pstyle` (docs/demo_network.md).
Writes a network pickle (G = G_ema, a fresh untrained tiny D) every --snap iterations and at the end.

Examples:

\b
# A natural source for the demo in one run, about 30 minutes on 2 CPU cores (the bundled demo's
# source was fitted in four stages with --resume: exact commands in docs/demo_network.md):
python fit_source.py --out=/tmp/source.pkl --heads=4 --views=4 --iterations=400 --batch=2 --lr=4e-3 \\
    --minutes=30 --source-only

\b
# A quick check (a minute):
python fit_source.py --out=/tmp/fit.pkl --heads=2 --views=2 --resolution=64 --iterations=5
"""

import json
import os
import time

import click
import torch

import dnnlib
import legacy
from dnnlib import cli
from torch_utils.safe_pickle import atomic_write_pickle
from training import source_fit
from training.domain_adaptation import with_domain_adaptation, without_domain_adaptation

TINY_D_KWARGS = dict(class_name='training.dual_discriminator.DualDiscriminator', c_dim=25, img_channels=3,
                     channel_base=2048, channel_max=32, num_fp16_res=0, conv_clamp=None, disc_c_noise=0.0,
                     block_kwargs=dict(freeze_layers=0), mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4))


def save_network(G: torch.nn.Module, path: str) -> None:
    """EG3D's pickle layout: G and G_ema are the fitted generator; D is an untrained tiny dual
    discriminator (the format needs one; nothing here trains it)."""
    D = dnnlib.util.construct_class_by_name(img_resolution=G.img_resolution, **TINY_D_KWARGS)
    atomic_write_pickle(dict(G=G, G_ema=G, D=D.eval().requires_grad_(False), training_set_kwargs=None,
                             augment_pipe=None), path)


@click.command(help=__doc__)
@click.option('--out', help='Network pickle to write', metavar='PKL', required=True, callback=cli.expand_path)
@click.option('--heads', help='Number of synthetic heads (seeds 0..heads-1)', type=click.IntRange(min=1),
              default=16, show_default=True)
@click.option('--views', 'views_per_head', help='Camera views per head', type=click.IntRange(min=1), default=4,
              show_default=True)
@click.option('--resolution', help='Image resolution (neural rendering = resolution/4)', type=click.IntRange(min=32),
              default=128, show_default=True)
@click.option('--iterations', help='Optimisation steps (0: only re-export --resume, e.g. with --source-only)',
              type=click.IntRange(min=0), default=400, show_default=True)
@click.option('--batch', 'batch_size', help='Views per step', type=click.IntRange(min=1), default=2, show_default=True)
@click.option('--lr', help='Adam learning rate', type=cli.FiniteFloat(min=0, min_open=True), default=3e-3,
              show_default=True)
@click.option('--style-from', help='First step that also fits the toon domain', type=click.IntRange(min=0),
              default=60, show_default=True)
@click.option('--trunc', 'truncation_psi', help='Fit the heads at this truncation towards their mean w (0.7: what '
              'gen_samples.py draws by default)', type=cli.FiniteFloat(min=0, min_open=True, max=1), default=1.0,
              show_default=True)
@click.option('--edge-weight', help='Weight of the L1 of image gradients (sharpens eyes, lips and outlines)',
              type=cli.FiniteFloat(min=0), default=0.0, show_default=True)
@click.option('--detail-weight', help='Weight of the L1 over the eyes\' and lips\' pixels (mean over those pixels)',
              type=cli.FiniteFloat(min=0), default=0.0, show_default=True)
@click.option('--depth-weight', help='Weight of the L1 of the foreground depth', type=cli.FiniteFloat(min=0),
              default=source_fit.DEPTH_WEIGHT, show_default=True)
@click.option('--seed', help='Data and sampling seed', type=int, default=0, show_default=True)
@click.option('--snap', help='Write the pickle every this many steps', type=click.IntRange(min=1), default=20,
              show_default=True)
@click.option('--minutes', help='Stop after this many minutes of fitting', type=cli.FiniteFloat(min=0, min_open=True),
              default=None)
@click.option('--resume', help='Continue from this network pickle (written by this script) instead of random weights; '
              'a --source-only pickle continues with --source-only',
              metavar='PKL', default=None, callback=cli.expand_path)
@click.option('--source-only', help='Fit and write the natural source only: a plain EG3D generator without the DAM '
              'and the toon domain (the start network of train.py --method=pstyle)', is_flag=True)
@click.option('--threads', help='torch CPU threads', type=click.IntRange(min=1), default=2, show_default=True)
@click.option('--overwrite', help='Replace an existing --out (never the --resume pickle)', is_flag=True)
def main(out: str, heads: int, views_per_head: int, resolution: int, iterations: int, batch_size: int, lr: float,
         style_from: int, truncation_psi: float, edge_weight: float, detail_weight: float, depth_weight: float,
         seed: int, snap: int, minutes: float, resume: str, source_only: bool, threads: int, overwrite: bool) -> None:
    if iterations == 0 and resume is None:
        raise click.BadParameter('0 iterations only re-export a network: pass --resume', param_hint="'--iterations'")
    if resume is not None and not os.path.isfile(resume):
        raise click.BadParameter(f'network pickle "{resume}" does not exist', param_hint="'--resume'")
    cli.check_not_a_source(out, '--out', [resume])
    cli.check_new_output(out, '--out', overwrite)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if resume is None:
        G = source_fit.build_demo_generator(resolution)
    else:
        G = legacy.load_network(resume, '--resume')['G_ema']
        if G.img_resolution != resolution:
            raise click.BadParameter(f'{resume} renders {G.img_resolution}x{G.img_resolution}, but --resolution '
                                     f'is {resolution}', param_hint="'--resume'")
    if G.domain_kwargs is None:
        if not source_only:
            raise click.BadParameter(f'{resume} has no domain path (was it written with --source-only?); continue it '
                                     'with --source-only, or resume from a pickle written without it',
                                     param_hint="'--resume'")
        # a plain source gets the demo's untrained DAM back: the fit only trains and writes the source
        G = with_domain_adaptation(G, **source_fit.DEMO_PRESET.G_kwargs['domain_kwargs'])
    if source_only:
        style_from = iterations  # never
    t0 = time.time()
    views = source_fit.render_views(heads, views_per_head, resolution, seed)
    click.echo(f'rendered {heads} heads x {views_per_head} views at {resolution}x{resolution} in '
               f'{time.time() - t0:.0f} s')

    def write() -> None:
        save_network(without_domain_adaptation(G) if source_only else G, out)

    def report(row: dict) -> None:
        click.echo(json.dumps({k: round(v, 4) for k, v in row.items()}), nl=True)
        write()

    if iterations > 0:
        source_fit.fit(G, views, iterations, batch_size=batch_size, lr=lr, style_from=style_from, seed=seed,
                      log_every=snap, max_seconds=None if minutes is None else 60 * minutes, callback=report,
                      truncation_psi=truncation_psi, edge_weight=edge_weight, detail_weight=detail_weight,
                      depth_weight=depth_weight)
    else:
        write()
    final = source_fit.mean_losses(G, views, range(heads), with_style=not source_only,
                                   truncation_psi=truncation_psi)
    click.echo('final mean L1 over all views: ' + json.dumps({k: round(v, 4) for k, v in final.items()}))
    click.echo(f'wrote {out} ({os.path.getsize(out) / 2 ** 20:.1f} MiB)')


if __name__ == '__main__':
    cli.run(main)
