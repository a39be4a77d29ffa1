"""EG3D's `legacy.py`: read network pickles safely, and rewrite one in this project's classes.

`load_network_pkl` (implemented in training/network_pickle.py, on top of the restricted unpickler
of torch_utils/safe_pickle.py) reads EG3D's official pickles, this project's training snapshots and
the PStyle-3D authors' checkpoints without running any code stored in the file. Packages import it
from training.network_pickle; scripts may use this module, as EG3D's scripts do. `load_network` and
`load_generator` are the one way every command line opens a network pickle (path or URL).
"""

import copy
import os

import click
import torch

import dnnlib
from dnnlib import cli
from torch_utils.safe_pickle import NetworkPickleError, atomic_write_pickle
from training.network_pickle import load_network_pkl

__all__ = ['NetworkPickleError', 'convert_network_pickle', 'load_generator', 'load_network', 'load_network_pkl']


def load_network(path: str, option: str = '--network') -> dict:
    """The networks of a pickle (local path or URL, downloads cached) through the safe loader; a file
    that cannot be read stops the command with one line naming `option`."""
    try:
        with dnnlib.util.open_url(path) as f:
            return load_network_pkl(f)
    except cli.INPUT_ERRORS as err:
        raise cli.network_error(option, path, err) from err


def load_generator(path: str, device: torch.device, option: str = '--network') -> torch.nn.Module:
    """G_ema of a network pickle (see `load_network`), in eval mode, without gradients, on `device`."""
    print(f'Loading networks from "{path}"...')
    return load_network(path, option)['G_ema'].eval().requires_grad_(False).to(device)


def _half_copy(network, name: str):
    """A copy of `network` (or None) with float16 parameters and buffers, refusing values float16 cannot hold."""
    if network is None:
        return None
    network = copy.deepcopy(network).half()
    for key, tensor in network.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise click.ClickException(f'--half-storage: {name}.{key} has values beyond float16\'s range (65504); '
                                       f'store this network without --half-storage')
    return network


@click.command()
@click.option('--source', help='Input network pickle (path or URL)', required=True, metavar='PATH')
@click.option('--dest', help='Output network pickle (a file path)', required=True, metavar='PATH')
@click.option('--force-fp16', help='Rebuild the networks with FP16 layers', type=bool, default=False, metavar='BOOL',
              show_default=True)
@click.option('--inference-only', help="Keep what generation needs: G_ema (also stored as G) and D, without a "
              "snapshot's G_src and resume_state (it can no longer resume training)", is_flag=True)
@click.option('--half-storage', help='With --inference-only: store the weights as float16 (half the file); loading '
              'turns them back into float32, so the networks run as before on weights rounded to float16', is_flag=True)
@click.option('--overwrite', help='Replace an existing --dest file (never the --source)', is_flag=True)
def convert_network_pickle(source: str, dest: str, force_fp16: bool, inference_only: bool, half_storage: bool,
                           overwrite: bool) -> None:
    """Rewrite a network pickle in this project's classes (EG3D's layout), e.g. to bundle a trained network.

    The output is written under a temporary name and renamed when complete.

    Examples:

    \b
    # Bundle a trained snapshot for generation (no training state):
    python legacy.py \\
        --source=~/training-runs/00000-tiny-toon-synthetic-pstyle-gpus1-batch4/network-snapshot-000004.pkl \\
        --dest=networks/pstyle3d-demo-synthetic.pkl --inference-only --overwrite

    \b
    # Rewrite EG3D's official generator in this project's classes:
    python legacy.py --source=~/downloads/ffhq512-128.pkl --dest=~/networks/ffhq512-128-pstyle3d.pkl
    """
    source, dest = os.path.expanduser(source), os.path.expanduser(dest)
    if half_storage and not inference_only:
        raise click.ClickException('--half-storage needs --inference-only (a training snapshot stays float32 so that '
                                   'it resumes exactly)')
    cli.check_not_a_source(dest, '--dest', [source])
    cli.check_new_output(dest, '--dest', overwrite)
    try:
        with dnnlib.util.open_url(source) as f:
            data = load_network_pkl(f, force_fp16=force_fp16)
    except (OSError, ValueError, NetworkPickleError) as err:
        raise click.ClickException(f'cannot read --source {source}: {err}')
    if inference_only:
        G, D = data['G_ema'], data['D']
        if half_storage:
            G, D = _half_copy(G, 'G_ema'), _half_copy(D, 'D')
        data = dict(G=G, G_ema=G, D=D, training_set_kwargs=data['training_set_kwargs'],
                    augment_pipe=data['augment_pipe'])
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    atomic_write_pickle(data, dest)
    click.echo(f'wrote {dest} ({os.path.getsize(dest) / 2 ** 20:.1f} MiB; keys {sorted(data)})')


if __name__ == '__main__':
    convert_network_pickle()  # pylint: disable=no-value-for-parameter
