"""Training snapshots: EG3D's `network-snapshot-KKKKKK.pkl` layout plus what an exact resume needs.

The pickle holds a dict with EG3D's keys `G`, `D`, `G_ema`, `training_set_kwargs`, `augment_pipe`,
plus `G_src` (the frozen source generator the losses compare against) and `resume_state`
(optimiser states, iteration counters and RNG states, all plain dicts / lists / tensors so that
`legacy.load_network_pkl` can read them without running any code).

The training loop writes them with torch_utils.safe_pickle.atomic_write_pickle: a crash mid-write
leaves at most a stray `*.tmp` file, never a truncated snapshot.
"""

import copy
import os
from typing import Dict, Optional

import torch

SNAPSHOT_NETWORKS = ('G', 'D', 'G_ema', 'G_src')


def kimg_tag(cur_nimg: int) -> str:
    """The training progress in file names: EG3D's '000040' at whole kimg, '000000.200' between them,
    so that ticks shorter than 1 kimg do not overwrite each other's snapshots and grids."""
    kimg, rest = divmod(cur_nimg, 1000)
    return f'{kimg:06d}' if rest == 0 else f'{kimg:06d}.{rest:03d}'


def snapshot_path(run_dir: str, cur_nimg: int) -> str:
    """EG3D's name: the snapshot of `cur_nimg` images is `network-snapshot-{kimg_tag}.pkl`."""
    return os.path.join(run_dir, f'network-snapshot-{kimg_tag(cur_nimg)}.pkl')


def capture_rng_state(device: torch.device, generators: Dict[str, torch.Generator]) -> Dict[str, torch.Tensor]:
    """The global torch RNG (CPU and, on a GPU, the device's) and the named loop generators."""
    state = {'torch_cpu': torch.get_rng_state()}
    if device.type == 'cuda':
        state['torch_cuda'] = torch.cuda.get_rng_state(device)
    for name, gen in generators.items():
        state[name] = gen.get_state()
    return state


def restore_rng_state(state: Dict[str, torch.Tensor], device: torch.device,
                      generators: Dict[str, torch.Generator]) -> None:
    """Inverse of `capture_rng_state`; raises ValueError if a generator's state is missing."""
    torch.set_rng_state(state['torch_cpu'])
    if device.type == 'cuda' and 'torch_cuda' in state:
        torch.cuda.set_rng_state(state['torch_cuda'], device)
    for name, gen in generators.items():
        if name not in state:
            raise ValueError(f'snapshot resume_state has no RNG state for "{name}"; cannot resume exactly')
        gen.set_state(state[name])


def build_snapshot(networks: Dict[str, torch.nn.Module], training_set_kwargs: dict,
                   resume_state: Optional[dict], augment_pipe: Optional[torch.nn.Module] = None) -> dict:
    """Frozen CPU copies of the networks in EG3D's snapshot dict, plus `resume_state`."""
    data = dict(training_set_kwargs=dict(training_set_kwargs))
    for name in SNAPSHOT_NETWORKS:
        module = networks[name]
        data[name] = copy.deepcopy(module).eval().requires_grad_(False).cpu()
    data['augment_pipe'] = augment_pipe
    data['resume_state'] = resume_state
    return data


def optimizer_state_to_cpu(opt: torch.optim.Optimizer) -> dict:
    """A deep CPU copy of an optimiser's state dict (the live one keeps training on the device)."""
    def to_cpu(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().clone()
        if isinstance(value, dict):
            return {k: to_cpu(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(to_cpu(v) for v in value)
        return value
    return to_cpu(opt.state_dict())
