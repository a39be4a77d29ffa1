"""Adapt a pretrained EG3D generator to an artistic style domain ("PStyle-3D").

Examples:

\b
# The paper's setting: one style domain from EG3D's FFHQ checkpoint on one GPU.
python train.py --outdir=~/training-runs --cfg=ffhq512 --data=~/datasets/pixar.zip --domain=pixar \\
    --resume=ffhq512-128.pkl --vgg=vgg19-dcbb9e9d.pth --arcface=model_ir_se50.pth --gpus=1 --batch=1

\b
# Content from projected real photos (a folder of w+ .npy files + dataset.json cameras), 2 GPUs.
python train.py --outdir=~/training-runs --cfg=ffhq512 --data=~/datasets/arcane.zip --domain=arcane \\
    --resume=ffhq512-128.pkl --content=~/projected-ws --gpus=2 --batch=2 --vgg=... --arcface=...

\b
# The naive fine-tuning baseline, and resuming a run from its last snapshot.
python train.py --outdir=~/training-runs --cfg=ffhq512 --data=~/datasets/pixar.zip --domain=pixar \\
    --method=finetune --resume=~/training-runs/00003-ffhq512-pixar-finetune-gpus1-batch1/network-snapshot-000040.pkl ...

\b
# CPU demo: the tiny preset with random-weight perceptual networks (losses then mean little).
python train.py --outdir=/tmp/runs --cfg=tiny --data=/tmp/synthetic_style --domain=synthetic --random-perceptual
"""

import json
import os
import re
from typing import Optional

import click
import torch

import configs
import dnnlib
import legacy
from camera_utils import CAMERA_LABEL_DIM, DATASET_JSON_FORMAT
from dnnlib import cli
from metrics import metric_main
from torch_utils import distributed
from training import trainable, training_loop
from training.domain_adaptation import add_domain
from training.content import LatentFolderContent
from training.perceptual import check_loss_weights
from training.training_loop import NonFiniteLossError


def subprocess_fn(rank: int, device: torch.device, c: dnnlib.EasyDict) -> dict:
    """One training process (see `torch_utils.distributed.launch`): learn the run folder from rank 0,
    then train. Returns this process's final networks (see `training_loop.training_loop`)."""
    c = dnnlib.EasyDict(c, run_dir=distributed.broadcast_object(c.run_dir, c.num_gpus))
    log_path = os.path.join(c.run_dir, 'log.txt')

    def print_fn(*args):  # the loop prints on rank 0 only
        print(*args, flush=True)
        with open(log_path, 'a', encoding='utf-8') as f:
            print(*args, file=f)

    return training_loop.training_loop(rank=rank, device=device, print_fn=print_fn, **loop_arguments(c, rank))


def loop_arguments(c: dnnlib.EasyDict, rank: int) -> dict:
    """`training_loop.training_loop`'s keyword arguments for the run config `c` in process `rank`: c's
    options, with the metric names `c.metrics` (as training_options.json records them) turned into
    the loop's `evaluate_snapshot` hook (`metrics.metric_main.snapshot_evaluator`)."""
    kwargs = {key: value for key, value in c.items() if key != 'metrics'}
    kwargs['evaluate_snapshot'] = metric_main.snapshot_evaluator(
        c.get('metrics', ()), c.training_set_kwargs, c.num_gpus, rank, c.run_dir,
        weights=dict(arcface=c.perceptual_kwargs.get('arcface')))
    return kwargs


def launch_training(c: dnnlib.EasyDict, desc: str, outdir: str, dry_run: bool, print_fn=print) -> Optional[str]:
    """Create `<outdir>/<00000-desc>/`, write training_options.json and run the processes (spawned for
    --gpus, or this one of torchrun's). Returns the run folder (None for a dry run, which only prints the
    options, and in torchrun processes other than rank 0, which learn the folder from rank 0)."""
    launching = distributed.is_launching_process()
    c.run_dir = os.path.join(outdir, f'{_next_run_id(outdir):05d}-{desc}') if launching else None
    if launching:
        print_fn('Training options:')
        print_fn(json.dumps(c, indent=2))
    if dry_run:
        if launching:
            print_fn('Dry run; exiting.')
        return None
    if launching:
        _make_run_dir(c, outdir, desc)
        print_fn(f'Output folder: {c.run_dir}')
    distributed.launch(subprocess_fn, c.num_gpus, args=(c,))
    return c.run_dir


def _make_run_dir(c: dnnlib.EasyDict, outdir: str, desc: str) -> None:
    """Create c.run_dir (the next free number if another train.py took it) with training_options.json."""
    os.makedirs(outdir, exist_ok=True)
    while True:  # another train.py may take the same number between listing and creating: take the next
        try:
            os.mkdir(c.run_dir)
            break
        except FileExistsError:
            c.run_dir = os.path.join(outdir, f'{_next_run_id(outdir):05d}-{desc}')
    with open(os.path.join(c.run_dir, 'training_options.json'), 'wt', encoding='utf-8') as f:
        json.dump(c, f, indent=2)


def _next_run_id(outdir: str) -> int:
    """One more than the largest run number in `outdir` (0 for a new folder)."""
    prev = [int(m.group()) for m in (re.match(r'^\d+', x) for x in
                                    (os.listdir(outdir) if os.path.isdir(outdir) else [])) if m]
    return max(prev, default=-1) + 1


def check_resume_snapshot(state: dict, G: torch.nn.Module, opts: dnnlib.EasyDict, parts: tuple) -> None:
    """A training snapshot resumes exactly: the same method, domain and trained parts as its run."""
    hint = ('--resume continues a run exactly; to start a new run from its weights, strip the training state '
            'first: python legacy.py --source=SNAPSHOT --dest=NEW.pkl --inference-only')
    if state.get('method', opts.method) != opts.method:
        raise click.ClickException(f'--method: the snapshot was trained with --method={state["method"]}, not '
                                   f'{opts.method}; {hint}')
    if state.get('domain', opts.domain) != opts.domain:
        raise click.ClickException(f'--domain: the snapshot trains domain "{state["domain"]}", not "{opts.domain}"; '
                                   f'{hint}')
    trained = sum(len(group['params']) for group in state['G_opt']['param_groups'])
    if trained != len(trainable.select_parameters(G, parts)) or (state.get('D_opt') is not None) != ('D' in parts):
        raise click.ClickException(f'--train: the snapshot trained other parts than {",".join(parts)} '
                                   f'({trained} generator tensors, D {"" if state.get("D_opt") else "not "}trained); '
                                   f'pass the --train of its run (see its training_options.json); {hint}')


def check_resume_preset(G: torch.nn.Module, opts: dnnlib.EasyDict) -> None:
    """The --cfg preset describes the --resume network: its training settings (neural rendering
    resolution, DAM layout, loss resolutions) are made for that generator layout only."""
    network = configs.architecture(getattr(G, 'init_kwargs', {}))
    preset = configs.architecture(configs.load_preset(opts.cfg).G_kwargs)
    if network != preset:
        differences = ', '.join(f'{key} {network[key]} (--cfg {preset[key]})' for key in network
                                if network[key] != preset[key])
        matching = configs.presets_for(getattr(G, 'init_kwargs', {}))
        hint = (f'pass --cfg={" or --cfg=".join(matching)}' if matching
                else 'pass the --cfg preset the network was made with')
        raise click.ClickException(f'--cfg: --resume {opts.resume} is not a {opts.cfg} network: {differences}; {hint}')


def validate_and_build(opts: dnnlib.EasyDict) -> tuple:
    """Check every option against the data, the network and the weights; build the loop config.
    Raises click.ClickException with what is wrong before any training work starts."""
    def fail(option: str, msg: str):
        raise click.ClickException(f'{option}: {msg}')

    try:
        preset = configs.load_preset(opts.cfg)
    except ValueError as err:
        fail('--cfg', str(err))
    if opts.batch % opts.gpus != 0:
        fail('--batch', f'must be a multiple of --gpus ({opts.gpus}), got {opts.batch}')
    batch_gpu = opts.batch_gpu or opts.batch // opts.gpus
    if opts.batch % (batch_gpu * opts.gpus) != 0:
        fail('--batch-gpu', f'--batch ({opts.batch}) must be a multiple of --batch-gpu x --gpus '
                            f'({batch_gpu} x {opts.gpus})')
    try:
        distributed.check_process_count(opts.gpus, use_cuda=torch.cuda.is_available())
    except ValueError as err:
        fail('--gpus', str(err))
    metrics = [] if opts.metrics in ('none', '') else [m.strip() for m in opts.metrics.split(',')]
    unknown = [m for m in metrics if not metric_main.is_valid_metric(m)]
    if unknown:
        fail('--metrics', f'unknown metric(s) {", ".join(unknown)}; use "none" or a comma list of '
                          f'{", ".join(metric_main.list_valid_metrics())} (docs/metrics.md)')
    try:
        parts = trainable.parse_parts(opts.train) if opts.train else (
            trainable.PSTYLE_PARTS if opts.method == 'pstyle' else trainable.FINETUNE_PARTS)
    except ValueError as err:
        fail('--train', str(err))
    if opts.method == 'finetune' and any(p in ('dam', 'encoder') for p in parts):
        fail('--train', '--method=finetune trains no domain path: drop "dam" and "encoder"')

    if not opts.random_perceptual:
        try:
            check_loss_weights(opts.vgg, opts.arcface)
        except ValueError as err:
            raise click.ClickException(str(err)) from err

    cli.check_writable_folder(opts.outdir, '--outdir')
    training_set_kwargs = dnnlib.EasyDict(class_name='training.dataset.ImageFolderDataset', path=opts.data,
                                          use_labels=True, max_size=None, xflip=opts.mirror)
    if not os.path.exists(opts.data):
        fail('--data', f'dataset "{opts.data}" does not exist (expected an EG3D-format folder or zip)')
    try:
        dataset = dnnlib.util.construct_class_by_name(**training_set_kwargs)
        has_camera_labels = dataset.has_labels and dataset.label_dim == CAMERA_LABEL_DIM  # reads and checks the labels
    except (OSError, ValueError) as err:
        fail('--data', str(err))
    if not has_camera_labels:
        fail('--data', f'the style dataset needs a {CAMERA_LABEL_DIM}-number camera label per image in dataset.json '
                       f'({DATASET_JSON_FORMAT}); found label_dim {dataset.label_dim}')
    training_set_kwargs.resolution = dataset.resolution
    training_set_kwargs.max_size = len(dataset)

    for option, path in (('--resume', opts.resume), ('--resume-d', opts.resume_d)):
        if path is not None and not dnnlib.util.is_url(path) and not os.path.isfile(path):
            fail(option, f'network pickle "{path}" does not exist')
    resumed = legacy.load_network(opts.resume, '--resume') if opts.resume is not None else None
    G = dnnlib.util.construct_class_by_name(**preset.G_kwargs) if resumed is None else resumed['G_ema']
    resume_state = None if resumed is None else resumed.get('resume_state')
    if resumed is not None:
        check_resume_preset(G, opts)
    if resumed is not None and resumed['D'] is None and opts.resume_d is None:
        fail('--resume-d', f'--resume {opts.resume} has no discriminator (e.g. the authors\' released checkpoints); '
                           f'pass EG3D\'s network pickle of the same resolution, e.g. --resume-d=ffhq512-128.pkl')
    if opts.resume_d is not None:
        if resumed is None or resumed['D'] is not None:
            fail('--resume-d', 'only a --resume without a discriminator takes one from --resume-d; drop the option')
        D = legacy.load_network(opts.resume_d, '--resume-d')['D']
        if D is None or D.img_resolution != G.img_resolution or D.c_dim != CAMERA_LABEL_DIM:
            fail('--resume-d', f'{opts.resume_d} needs a discriminator of {G.img_resolution}x{G.img_resolution} '
                               f'images with {CAMERA_LABEL_DIM}-number camera labels (EG3D\'s pickle of the --resume '
                               'resolution)')
    if G.img_resolution != dataset.resolution:
        fail('--data', f'images are {dataset.resolution}x{dataset.resolution} but the network renders '
                       f'{G.img_resolution}x{G.img_resolution}; resize the dataset (dataset_tool.py --resolution)')

    stored_domains = list(getattr(G, 'domain_names', None) or [])  # none in plain EG3D networks
    if opts.domain not in configs.list_domains() + stored_domains:
        fail('--domain', f'unknown domain "{opts.domain}": expected a preset in configs/domains '
                         f'({", ".join(configs.list_domains())}) or a domain stored in the network '
                         f'({", ".join(stored_domains) or "none"}); '
                         f'add configs/domains/{opts.domain}.json for a new one')
    domain_kwargs = dict(preset.domain_kwargs)
    existing = getattr(G, 'domain_kwargs', None)
    for key in ('modres_max_res', 'sr_modres'):  # the layout of a new DAM
        if opts[key] is None:
            continue
        flag = '--' + key.replace('_', '-')
        if opts.method != 'pstyle':
            fail(flag, 'only --method=pstyle adds a DAM')
        if existing is not None and existing[key] != opts[key]:
            fail(flag, f'--resume already has a DAM with {key}={existing[key]}; its layout cannot change '
                       '(drop the option)')
        domain_kwargs[key] = opts[key]
    if resume_state is not None:
        G = resumed['G']  # a snapshot resumes its own networks as they are
    elif opts.method == 'pstyle':
        G = add_domain(G, opts.domain, domain_kwargs)
    try:
        trainable.select_parameters(G, parts)
    except ValueError as err:
        fail('--train', str(err))
    if resume_state is not None:
        check_resume_snapshot(resume_state, G, opts, parts)
    if opts.content != 'sampled':
        try:
            LatentFolderContent(opts.content, G.backbone.num_ws, G.w_dim)
        except (OSError, ValueError) as err:
            fail('--content', str(err))

    c = dnnlib.EasyDict(
        training_set_kwargs=training_set_kwargs,
        data_loader_kwargs=dict(pin_memory=torch.cuda.is_available(), num_workers=opts.workers,
                                prefetch_factor=2 if opts.workers > 0 else None),
        G_kwargs=preset.G_kwargs, D_kwargs=preset.D_kwargs,
        G_opt_kwargs=dict(class_name='torch.optim.Adam', lr=opts.glr, betas=[0.0, 0.99], eps=1e-8),
        D_opt_kwargs=dict(class_name='torch.optim.Adam', lr=opts.dlr, betas=[0.0, 0.99], eps=1e-8),
        loss_kwargs=dict(adv_weight=opts.adv, content_weight=opts.content_weight, style_weight=opts.style_weight,
                         id_weight=opts.id_weight, density_reg=opts.density_reg, geom_weight=opts.geom_weight,
                         r1_gamma=opts.gamma, density_reg_points=preset.training['density_reg_points'],
                         neural_rendering_resolution=preset.neural_rendering_resolution,
                         perceptual_resolution=(opts.perceptual_res if opts.perceptual_res is not None
                                                else preset.training['perceptual_resolution'])),
        perceptual_kwargs=dict(vgg=opts.vgg, arcface=opts.arcface, random=opts.random_perceptual),
        content=opts.content, truncation_psi=opts.trunc, method=opts.method, domain=opts.domain,
        domain_kwargs=domain_kwargs,
        train_parts=list(parts), G_reg_interval=preset.training['G_reg_interval'],
        D_reg_interval=preset.training['D_reg_interval'], ema_kimg=preset.training['ema_kimg'],
        ema_rampup=preset.training['ema_rampup'], grid_rows=preset.training['grid_rows'],
        random_seed=opts.seed, num_gpus=opts.gpus, batch_size=opts.batch, batch_gpu=batch_gpu,
        total_kimg=opts.kimg, kimg_per_tick=opts.tick, network_snapshot_ticks=opts.snap,
        image_snapshot_ticks=opts.img_snap, resume_pkl=opts.resume, resume_d_pkl=opts.resume_d, metrics=metrics)
    desc = f'{opts.cfg}-{dataset.name}-{opts.domain}-{opts.method}-gpus{opts.gpus}-batch{opts.batch}'
    return c, desc


def apply_presets(ctx: click.Context, opts: dict) -> dnnlib.EasyDict:
    """Options left at their defaults take the --cfg preset's, then the --domain preset's values."""
    opts = dnnlib.EasyDict(opts)
    layers = []
    if opts.cfg in configs.list_presets():
        layers.append(configs.load_preset(opts.cfg).options)
    if opts.domain in configs.list_domains():
        layers.append(configs.load_domain(opts.domain).options)
    for layer in layers:
        for key, value in layer.items():
            if key not in opts:
                raise click.ClickException(f'preset option "{key}" is not a train.py option')
            if ctx.get_parameter_source(key) == click.core.ParameterSource.DEFAULT:
                opts[key] = value
    return opts


@click.command(help=__doc__)
@click.pass_context
# Required.
@click.option('--outdir', help='Where to make the run folder', metavar='DIR', required=True, callback=cli.expand_path)
@click.option('--cfg', help=f'Config preset ({", ".join(configs.list_presets())})', metavar='STR', required=True)
@click.option('--data', help='Style dataset (EG3D format, with camera labels)', metavar='[ZIP|DIR]', required=True,
              callback=cli.expand_path)
@click.option('--domain', help='Style domain name (a configs/domains preset or one stored in --resume)', metavar='NAME',
              required=True)
@click.option('--gpus', help='Number of processes (GPUs; on a CPU machine, gloo processes)', metavar='INT',
              type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--batch', help='Total batch size', metavar='INT', type=click.IntRange(min=1), default=1,
              show_default=True)
# Method and data.
@click.option('--method', help='PStyle-3D or the naive fine-tuning baseline', type=click.Choice(['pstyle', 'finetune']),
              default='pstyle', show_default=True)
@click.option('--content', help='Content latents: "sampled" or a folder of w+ .npy/.pt + dataset.json',
              metavar='sampled|DIR', default='sampled', show_default=True, callback=cli.expand_path)
@click.option('--trunc', help='Truncation psi of sampled content', metavar='FLOAT', type=cli.FiniteFloat(min=0),
              default=0.7, show_default=True)
@click.option('--resume', help='Start from an EG3D pickle or resume our snapshot', metavar='[PATH|URL]', type=str,
              callback=cli.expand_path)
@click.option('--resume-d',
              help='Discriminator for a --resume that has none (the authors\' checkpoints): EG3D\'s pickle',
              metavar='[PATH|URL]', type=str, callback=cli.expand_path)
@click.option('--mirror', help='Enable dataset x-flips', metavar='BOOL', type=bool, default=False, show_default=True)
# Losses.
@click.option('--adv', help='Adversarial loss weight', metavar='FLOAT', type=cli.FiniteFloat(min=0), default=0.7,
              show_default=True)
@click.option('--content-weight', help='Content (VGG relu4_1 MSE) loss weight', metavar='FLOAT',
              type=cli.FiniteFloat(min=0), default=1.0, show_default=True)
@click.option('--style-weight', help='Style (AdaIN statistics) loss weight', metavar='FLOAT',
              type=cli.FiniteFloat(min=0), default=1.0, show_default=True)
@click.option('--id-weight', help='Identity (ArcFace) loss weight', metavar='FLOAT', type=cli.FiniteFloat(min=0),
              default=0.5, show_default=True)
@click.option('--density-reg', help='Density smoothness weight', metavar='FLOAT', type=cli.FiniteFloat(min=0),
              default=0.1, show_default=True)
@click.option('--geom-weight', help='Geometry preservation weight (densities of G vs the source)', metavar='FLOAT',
              type=cli.FiniteFloat(min=0), default=0.0, show_default=True)
@click.option('--gamma', '--r1-gamma', 'gamma', help='R1 regularization weight', metavar='FLOAT',
              type=cli.FiniteFloat(min=0), default=5.0, show_default=True)
# What trains, how fast.
@click.option('--train',
              help='Trained parts [default: backbone.synthesis,superresolution,dam,encoder,D; finetune: '
                   'backbone,decoder,superresolution,D]',
              metavar='LIST', type=str)
@click.option('--modres-max-res',
              help='A new DAM gets ModRes in the backbone blocks up to this resolution (0 = none) [default: the '
                   "--cfg preset's]",
              metavar='RES', type=click.IntRange(min=0))
@click.option('--sr-modres',
              help='A new DAM gets ModRes in the super-resolution blocks too [default: the --cfg preset\'s]',
              metavar='BOOL', type=bool)
@click.option('--glr', help='G learning rate', metavar='FLOAT', type=cli.FiniteFloat(min=0), default=1e-5,
              show_default=True)
@click.option('--dlr', help='D learning rate', metavar='FLOAT', type=cli.FiniteFloat(min=0), default=1e-5,
              show_default=True)
# Perceptual networks.
@click.option('--vgg', help='VGG-19 weights (vgg19-dcbb9e9d.pth)', metavar='[PATH|URL]', type=str,
              callback=cli.expand_path)
@click.option('--arcface', help='ArcFace IR-SE-50 weights (model_ir_se50.pth)', metavar='[PATH|URL]', type=str,
              callback=cli.expand_path)
@click.option('--perceptual-res',
              help='Resize renders and exemplars to this size for the VGG-19 content and style losses [default: '
                   "the --cfg preset's]",
              metavar='RES', type=click.IntRange(min=16))
@click.option('--random-perceptual', help='Random-weight perceptual networks (tests, CPU demo)', is_flag=True)
# Misc.
@click.option('--batch-gpu', help='Limit batch size per GPU', metavar='INT', type=click.IntRange(min=1))
@click.option('--kimg', help='Total training duration (1 kimg = 1000 images)', metavar='KIMG',
              type=cli.FiniteFloat(min=0, min_open=True), default=120, show_default=True)
@click.option('--tick', help='How often to print progress', metavar='KIMG', type=cli.FiniteFloat(min=0, min_open=True),
              default=0.2, show_default=True)
@click.option('--snap', help='How often to save snapshots', metavar='TICKS', type=click.IntRange(min=1), default=50,
              show_default=True)
@click.option('--img-snap', help='How often to save image grids', metavar='TICKS', type=click.IntRange(min=1),
              default=10, show_default=True)
@click.option('--seed', help='Random seed', metavar='INT', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--workers', help='DataLoader worker processes', metavar='INT', type=click.IntRange(min=0), default=3,
              show_default=True)
@click.option('--metrics',
              help='Quality metrics at every network snapshot, comma-separated (docs/metrics.md), or "none"',
              metavar='LIST', default='none', show_default=True)
@click.option('-n', '--dry-run', help='Print training options and exit', is_flag=True)
def main(ctx: click.Context, **kwargs):
    opts = apply_presets(ctx, kwargs)
    c, desc = validate_and_build(opts)
    try:
        launch_training(c, desc=desc, outdir=opts.outdir, dry_run=opts.dry_run)
    except NonFiniteLossError as err:
        raise click.ClickException(str(err)) from err
    except torch.multiprocessing.ProcessRaisedException as err:  # the same, raised in a spawned process
        if NonFiniteLossError.__name__ not in str(err):
            raise
        raise click.ClickException(str(err).strip().splitlines()[-1].split(': ', 1)[-1]) from err


if __name__ == '__main__':
    cli.run(main)
