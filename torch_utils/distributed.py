"""Multi-process runs of train.py and calc_metrics.py: the one place that starts processes and joins them.

Two launchers reach the same worker function:
- `--gpus=N` alone: N processes spawned on this machine, rendezvous through a file in a temporary folder;
- torchrun (one or several machines): every process is started by PyTorch's launcher, which sets RANK,
  WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (env:// rendezvous); `--gpus` must equal WORLD_SIZE.
Each process uses GPU LOCAL_RANK of its machine with NCCL, or the CPU with gloo.
"""

import os
import tempfile
from typing import Any, Callable, Optional, Sequence

import torch

TORCHRUN_VARIABLES = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')


def launched_by_torchrun() -> bool:
    """True in a process started by torchrun (`python -m torch.distributed.run`)."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def check_process_count(num_processes: int, use_cuda: bool, option: str = '--gpus') -> None:
    """`option` counts every process of the job (torchrun's WORLD_SIZE), and this machine has a GPU for each
    of its processes when `use_cuda`; raises ValueError saying what to pass otherwise."""
    if launched_by_torchrun() and int(os.environ['WORLD_SIZE']) != num_processes:
        world_size = int(os.environ['WORLD_SIZE'])
        raise ValueError(f'{num_processes} process(es) asked for, but torchrun started {world_size} (WORLD_SIZE, '
                         f'all machines together); pass {option}={world_size}')
    local_processes = int(os.environ.get('LOCAL_WORLD_SIZE', num_processes))
    if use_cuda and local_processes > torch.cuda.device_count():
        raise ValueError(f'{local_processes} processes on this machine but PyTorch sees '
                         f'{torch.cuda.device_count()} GPU(s); start at most one process per GPU ({option}, '
                         f'torchrun --nproc_per_node)')


def is_launching_process() -> bool:
    """Whether this process speaks for the run before the workers start: rank 0 under torchrun, else always."""
    return not launched_by_torchrun() or int(os.environ['RANK']) == 0


def launch(fn: Callable[..., Any], num_processes: int, args: Sequence = (), use_cuda: Optional[bool] = None) -> Any:
    """Call `fn(rank, device, *args)` in each of `num_processes` processes, each joined to the process group
    (no group for a single process). `fn` must be a module-level function (spawn pickles it).

    Returns `fn`'s result of this process: under torchrun or with one process the worker runs here; spawned
    workers return nothing to the caller (None). `use_cuda` defaults to whether a GPU is visible.
    """
    use_cuda = torch.cuda.is_available() if use_cuda is None else use_cuda
    if launched_by_torchrun():
        check_process_count(num_processes, use_cuda)
        return _worker(int(os.environ['RANK']), fn, num_processes, 'env://', use_cuda, tuple(args))
    if num_processes == 1:
        return _worker(0, fn, 1, None, use_cuda, tuple(args))
    with tempfile.TemporaryDirectory() as temp_dir:
        init_method = 'file://' + os.path.abspath(os.path.join(temp_dir, '.torch_distributed_init'))
        torch.multiprocessing.spawn(_worker, args=(fn, num_processes, init_method, use_cuda, tuple(args)),
                                    nprocs=num_processes)
    return None


def _worker(rank: int, fn: Callable[..., Any], world_size: int, init_method: Optional[str], use_cuda: bool,
            args: tuple) -> Any:
    """One process: pick its device, join the group, run `fn`, and leave the group however `fn` ends."""
    local_rank = int(os.environ.get('LOCAL_RANK', rank))  # torchrun numbers GPUs per machine, spawn per run
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device('cuda', local_rank)
    else:
        device = torch.device('cpu')
    if world_size > 1:
        torch.distributed.init_process_group(backend='nccl' if use_cuda else 'gloo', init_method=init_method,
                                             rank=rank, world_size=world_size)
        if not use_cuda:  # the processes of one machine share its cores
            local_world = int(os.environ.get('LOCAL_WORLD_SIZE', world_size))
            torch.set_num_threads(max(1, torch.get_num_threads() // local_world))
    try:
        return fn(rank, device, *args)
    finally:
        if world_size > 1:
            torch.distributed.destroy_process_group()


def broadcast_object(obj: Any, world_size: int) -> Any:
    """Rank 0's `obj` in every process (e.g. the run folder rank 0 created); `obj` itself for one process."""
    if world_size == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(obj: Any, world_size: int) -> list:
    """Each process's `obj`, in rank order (a one-element list for one process)."""
    if world_size == 1:
        return [obj]
    gathered: list = [None] * world_size
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def all_true(flag: bool, world_size: int) -> bool:
    """Whether `flag` holds in every process: a decision all ranks must take alike (e.g. to skip collective work)."""
    return all(all_gather(bool(flag), world_size))
