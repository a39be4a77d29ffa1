"""Measure the quality of a network, or of a folder of images, with FID / KID / PR / IS and the 3-D metrics.

Each metric prints one JSON line in StyleGAN3's format and appends it to `metric-<name>.jsonl` in the
network's run folder (or --outdir). Metrics, formulas and protocols: docs/metrics.md.

Examples:

\b
# FID and KID of a trained network against its style dataset (50k samples, EG3D's camera sampling):
python calc_metrics.py --metrics=fid50k_full,kid50k_full --data=~/datasets/pixar.zip --mirror=1 \\
    --network=~/training-runs/00000-ffhq512-pixar/network-snapshot-000120.pkl --domain=pixar

\b
# Another method's outputs (a folder of PNGs) under the same protocol, against the same dataset:
python calc_metrics.py --metrics=fid50k_full,kid50k_full,pr50k3_full --data=~/datasets/pixar.zip \\
    --images=~/outputs/other-method --vgg16=vgg16-397923af.pth --outdir=~/metrics

\b
# Stylisation and 3-D metrics of the bundled demo network (cameras from its synthetic dataset):
python calc_metrics.py --metrics=identity1k,multiview1k,geometry1k --data=~/datasets/heads-toon.zip \\
    --arcface=model_ir_se50.pth --outdir=/tmp/metrics

\b
# 8 GPUs of one machine; or 2 machines x 8 GPUs through torchrun (run on each, --node_rank=0 and 1):
python calc_metrics.py --metrics=fid50k_full --data=~/datasets/ffhq512.zip --mirror=1 --gpus=8 \\
    --network=ffhq512-128.pkl
torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_endpoint=host0:29500 calc_metrics.py \\
    --metrics=fid50k_full --data=~/datasets/ffhq512.zip --mirror=1 --gpus=16 --network=ffhq512-128.pkl
"""

import os
from typing import List, Optional

import click
import torch

import dnnlib
import gen_utils
import legacy
from metrics import metric_main
from metrics.image_sources import ImageFolder
from metrics.inception import INCEPTION_URL
from torch_utils import distributed
from training import inference


# Exceptions that mean bad input (a file, a folder, an option value), reported as one line.
_INPUT_ERRORS = ('ValueError', 'FileNotFoundError', 'OSError', 'ImageReadError', 'ClickException')


class MetricList(click.ParamType):
    """Comma-separated metric names, each checked against the registry."""
    name = 'metrics'

    def convert(self, value, param, ctx) -> List[str]:
        if isinstance(value, list):
            return value
        names = [x.strip() for x in str(value).split(',') if x.strip()]
        unknown = [x for x in names if not metric_main.is_valid_metric(x)]
        if not names or unknown:
            self.fail(f'unknown metric(s) {", ".join(unknown) or "(none given)"}; valid metrics: '
                      f'{", ".join(metric_main.list_valid_metrics())}', param, ctx)
        return names


def _load_networks(args: dnnlib.EasyDict, device: torch.device) -> dnnlib.EasyDict:
    """G_ema (and training_set_kwargs) of --network, G_ema of --source-network."""
    network = legacy.load_network(args.network)
    out = dnnlib.EasyDict(G=network['G_ema'].eval().requires_grad_(False).to(device),
                          training_set_kwargs=network.get('training_set_kwargs'), G_source=None)
    if args.source_network is not None:
        out.G_source = legacy.load_generator(args.source_network, device, '--source-network')
    return out


def subprocess_fn(rank: int, device: torch.device, args: dnnlib.EasyDict) -> None:
    """One process (see `torch_utils.distributed.launch`): run every metric; rank 0 alone writes."""
    if rank == 0 and args.run_dir is not None:
        os.makedirs(args.run_dir, exist_ok=True)
    opts = dict(G=None, G_kwargs={}, dataset_kwargs=args.dataset_kwargs, num_gpus=args.num_gpus, rank=rank,
                device=device, progress=args.progress, weights=args.weights, batch_size=args.batch)
    if args.image_folder is not None:
        opts.update(image_folder=ImageFolder(args.image_folder))
    else:
        nets = _load_networks(args, device)
        domain, _ = gen_utils.select_domain(nets.G, args.domain, args.exemplar, device)
        opts.update(G=nets.G, G_kwargs=inference.domain_kwargs(domain, args.alpha), G_source=nets.G_source)
        if not opts['dataset_kwargs'].get('path') and nets.training_set_kwargs:
            opts['dataset_kwargs'] = dict(nets.training_set_kwargs, xflip=args.dataset_kwargs['xflip'])
    for metric in args.metrics:
        result = metric_main.calc_metric(metric, **opts)
        if rank == 0:
            metric_main.report_metric(result, run_dir=args.run_dir, snapshot_pkl=args.network)


def _run_dir(network: Optional[str], outdir: Optional[str]) -> Optional[str]:
    """Where metric-<name>.jsonl goes: --outdir, else the folder of a local network pickle, else nowhere."""
    if outdir is not None:
        return outdir
    if network is not None and not dnnlib.util.is_url(network):
        return os.path.dirname(os.path.abspath(network))
    return None


@click.command(help=__doc__)
@click.option('--network', 'network', help='Network pickle (path or URL) [default: the bundled demo network]',
              metavar='PATH')
@click.option('--metrics', help='Comma-separated list of metrics (docs/metrics.md)', metavar='LIST', type=MetricList(),
              default='fid50k_full', show_default=True)
@click.option('--data', help='Dataset (folder or zip): real images and the camera labels for sampling '
                             '[default: the dataset the network was trained on]', metavar='PATH')
@click.option('--mirror', help='Mirror the dataset images (x-flips) as the real set', metavar='BOOL', type=bool,
              default=False, show_default=True)
@click.option('--images', 'image_folder', help='Evaluate every image of this folder instead of network samples',
              metavar='DIR')
@click.option('--domain', help='Style domain stored in the network [default: its first one]', metavar='NAME')
@click.option('--exemplar', help='Exemplar image that defines the style (networks with an encoder)', metavar='FILE')
@click.option('--alpha', help='Style strength of the samples (0 = natural, 1 = the style)', metavar='FLOAT',
              type=click.FloatRange(min=0), default=1, show_default=True)
@click.option('--source-network', help='Natural network to compare stylised renders with (identity, geometry) '
                                       '[default: the network itself at alpha 0]', metavar='PATH')
@click.option('--inception', help='Inception-v3 weights pt_inception-2015-12-05-6726825d.pth (path or URL)',
              metavar='PATH', default=INCEPTION_URL, show_default=True)
@click.option('--vgg16', help='VGG-16 weights vgg16-397923af.pth for pr50k3_full (path or URL)', metavar='PATH')
@click.option('--arcface', help='ArcFace weights model_ir_se50.pth for identity1k (path or URL)', metavar='PATH')
@click.option('--gpus', 'num_gpus', help='Number of processes (GPUs, or CPU processes without CUDA)', metavar='INT',
              type=click.IntRange(min=1), default=1, show_default=True)
@click.option('--batch', help='Images per forward pass and process', metavar='INT', type=click.IntRange(min=1),
              default=16, show_default=True)
@click.option('--device', help='Where to run', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto',
              show_default=True)
@click.option('--outdir', help='Folder for metric-<name>.jsonl [default: the network\'s run folder]', metavar='DIR')
@click.option('--progress/--no-progress', help='Show progress bars', default=True, show_default=True)
def main(network, metrics, data, mirror, image_folder, domain, exemplar, alpha, source_network, inception, vgg16,
         arcface, num_gpus, batch, device, outdir, progress):
    if image_folder is not None:
        if network is not None or source_network is not None:
            raise click.UsageError('give either --network or --images, not both')
        if data is None:
            raise click.UsageError('--images compares a folder with a dataset: give --data too')
    else:
        network = gen_utils.resolve_network_path(network)
    if source_network is not None and not dnnlib.util.is_url(source_network) and not os.path.isfile(source_network):
        raise click.BadParameter(f'network pickle "{source_network}" does not exist', param_hint="'--source-network'")
    if data is not None and not os.path.exists(data):
        raise click.BadParameter(f'dataset "{data}" does not exist', param_hint="'--data'")
    if image_folder is not None and not os.path.isdir(image_folder):
        raise click.BadParameter(f'"{image_folder}" is not a folder', param_hint="'--images'")
    try:
        if image_folder is not None:
            ImageFolder(image_folder)  # refuse non-images and mixed sizes before any work starts
    except ValueError as err:
        raise click.ClickException(str(err)) from err

    args = dnnlib.EasyDict(network=network, metrics=metrics, image_folder=image_folder, domain=domain,
                           exemplar=exemplar, alpha=alpha, source_network=source_network, num_gpus=num_gpus,
                           batch=batch, progress=progress, run_dir=_run_dir(network if image_folder is None else None,
                                                                            outdir),
                           weights=dict(inception=inception, vgg16=vgg16, arcface=arcface),
                           dataset_kwargs=dict(path=data, xflip=mirror))
    use_cuda = gen_utils.select_device(device).type == 'cuda'
    try:
        distributed.check_process_count(num_gpus, use_cuda)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="'--gpus'") from err
    if args.run_dir is None and distributed.is_launching_process():
        print('No --outdir and no local network pickle: results are printed, not saved.')

    try:
        distributed.launch(subprocess_fn, num_gpus, args=(args,), use_cuda=use_cuda)
    except (ValueError, FileNotFoundError, OSError) as err:
        raise click.ClickException(str(err)) from err
    except torch.multiprocessing.ProcessRaisedException as err:
        # A child's traceback comes back as text; its last line is "<ErrorType>: <message>". Bad input
        # becomes one line as in a single process; anything else keeps its traceback.
        kind, _, message = str(err).strip().splitlines()[-1].partition(': ')
        if kind.rpartition('.')[-1] not in _INPUT_ERRORS:
            raise
        raise click.ClickException(message) from err


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
