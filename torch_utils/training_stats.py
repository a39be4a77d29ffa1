"""Training statistics: cheap `report()` calls anywhere, averaged by `Collector`s across devices and processes.

`report(name, values)` only adds the count, sum and sum of squares of the values to a per-device
counter (no GPU->CPU transfer). `Collector.update()` gathers the counters of every device, sums them
over processes with one `torch.distributed.all_reduce` (after `init_multiprocessing`), and exposes
the mean / std / count of everything reported between its last two updates. Same API as EG3D's.
"""

import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

import dnnlib

_NUM_MOMENTS = 3                  # [number of scalars, sum, sum of squares]
_REDUCE_DTYPE = torch.float32     # First per-tensor reduction (on the values' device).
_COUNTER_DTYPE = torch.float64    # Running counters: float64 so long runs do not lose precision.

_rank = 0                                           # Rank of this process.
_sync_device: Optional[torch.device] = None         # Device for all_reduce; None = single process.
_sync_called = False                                # Has a Collector synced yet?
_counters: Dict[str, Dict[torch.device, torch.Tensor]] = {}   # name -> device -> moments since last sync
_cumulative: Dict[str, torch.Tensor] = {}           # name -> moments summed over all syncs (CPU)


def init_multiprocessing(rank: int, sync_device: Optional[torch.device]) -> None:
    """Enable collection across processes; call after `torch.distributed.init_process_group()`.

    rank: this process's rank. sync_device: device used for the all_reduce (e.g.
    `torch.device('cuda', rank)` with NCCL, the CPU with gloo), or None for single-process mode.
    Must be called before the first `Collector.update()`.
    """
    global _rank, _sync_device
    if _sync_called:
        raise RuntimeError('training_stats.init_multiprocessing() must be called before the first Collector.update()')
    _rank = int(rank)
    _sync_device = sync_device


def report(name: str, value: Any) -> Any:
    """Add scalars (a Python number, list, numpy array or tensor of any shape) to statistic `name`.

    Every process must report each name at least once, in the same order (report `[]` if it has
    nothing), because the all_reduce in `Collector.update()` pairs names by position.
    Returns `value` unchanged, so it can wrap an expression.
    """
    if not isinstance(name, str):
        raise TypeError(f'statistic name must be a string, got {type(name).__name__}')
    device_counters = _counters.setdefault(name, {})
    elems = torch.as_tensor(value)
    if elems.numel() == 0:
        return value
    elems = elems.detach().flatten().to(_REDUCE_DTYPE)
    moments = torch.stack([torch.ones_like(elems).sum(), elems.sum(), elems.square().sum()]).to(_COUNTER_DTYPE)
    if moments.device not in device_counters:
        device_counters[moments.device] = torch.zeros_like(moments)
    device_counters[moments.device].add_(moments)
    return value


def report0(name: str, value: Any) -> Any:
    """Like `report()`, but only rank 0's values count (the other ranks report nothing)."""
    report(name, value if _rank == 0 else [])
    return value


class Collector:
    """Averages of the statistics reported between the last two calls to `update()`.

    regex: which statistic names to collect (full match). keep_previous: if a statistic received
    nothing since the previous update, keep its previous averages instead of dropping them.
    """

    def __init__(self, regex: str = '.*', keep_previous: bool = True):
        self._regex = re.compile(regex)
        self._keep_previous = keep_previous
        self._cumulative: Dict[str, torch.Tensor] = {}
        self._moments: Dict[str, torch.Tensor] = {}
        self.update()  # Start from what was reported so far, so the first round shows only new values.
        self._moments.clear()

    def names(self) -> List[str]:
        """Names of all statistics reported so far that match the regex."""
        return [name for name in _counters if self._regex.fullmatch(name)]

    def update(self) -> None:
        """Take the values reported since the last update (all devices and processes) as the current round."""
        if not self._keep_previous:
            self._moments.clear()
        for name, cumulative in _sync(self.names()):
            previous = self._cumulative.setdefault(name, torch.zeros([_NUM_MOMENTS], dtype=_COUNTER_DTYPE))
            delta = cumulative - previous
            previous.copy_(cumulative)
            if float(delta[0]) != 0:
                self._moments[name] = delta

    def _get_delta(self, name: str) -> torch.Tensor:
        if not self._regex.fullmatch(name):
            raise KeyError(f'statistic "{name}" does not match this collector\'s regex "{self._regex.pattern}"')
        return self._moments.get(name, torch.zeros([_NUM_MOMENTS], dtype=_COUNTER_DTYPE))

    def num(self, name: str) -> int:
        """Number of scalars of `name` in the current round (0 if none)."""
        return int(self._get_delta(name)[0])

    def mean(self, name: str) -> float:
        """Mean of the scalars of `name` in the current round (NaN if none)."""
        count, total, _ = (float(v) for v in self._get_delta(name))
        return total / count if count else float('nan')

    def std(self, name: str) -> float:
        """Population standard deviation of the scalars of `name` (NaN if none, 0 for one scalar)."""
        count, total, total_sq = (float(v) for v in self._get_delta(name))
        if count == 0 or not np.isfinite(total):
            return float('nan')
        if count == 1:
            return 0.0
        mean = total / count
        return float(np.sqrt(max(total_sq / count - mean ** 2, 0.0)))  # Clamp rounding below zero.

    def as_dict(self) -> dnnlib.EasyDict:
        """{name: EasyDict(num, mean, std)} for every collected statistic."""
        return dnnlib.EasyDict({name: dnnlib.EasyDict(num=self.num(name), mean=self.mean(name), std=self.std(name))
                                for name in self.names()})

    def __getitem__(self, name: str) -> float:
        """`collector[name]` is `collector.mean(name)`."""
        return self.mean(name)


def _sync(names: List[str]) -> List[Tuple[str, torch.Tensor]]:
    """Fold the per-device counters of `names` into the cumulative totals, summed over processes."""
    global _sync_called
    if not names:
        return []
    _sync_called = True
    device = _sync_device if _sync_device is not None else torch.device('cpu')
    deltas = []
    for name in names:
        delta = torch.zeros([_NUM_MOMENTS], dtype=_COUNTER_DTYPE, device=device)
        for counter in _counters[name].values():
            delta.add_(counter.to(device))
            counter.zero_()
        deltas.append(delta)
    deltas = torch.stack(deltas)
    if _sync_device is not None:
        torch.distributed.all_reduce(deltas)
    deltas = deltas.cpu()
    for idx, name in enumerate(names):
        _cumulative.setdefault(name, torch.zeros([_NUM_MOMENTS], dtype=_COUNTER_DTYPE)).add_(deltas[idx])
    return [(name, _cumulative[name]) for name in names]


default_collector = Collector()  # A collector of everything, for code that does not make its own.
