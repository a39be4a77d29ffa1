"""Book-keeping of the training loop: exemplar order, loss statistics, tick logs, image grids."""

import json
import os
import time
from typing import Dict, Iterator

import numpy as np
import psutil
import PIL.Image
import torch

import dnnlib


class ExemplarSampler(torch.utils.data.Sampler):
    """Endless dataset indices: a fresh seeded permutation per epoch, split across processes.

    The stream is a pure function of (seed, rank, num_replicas, position), so a resumed run
    restarts it at `start` = the number of exemplars this process had consumed.
    """

    def __init__(self, size: int, rank: int = 0, num_replicas: int = 1, seed: int = 0, start: int = 0):
        if size <= 0:
            raise ValueError('the style dataset is empty')
        if not 0 <= rank < num_replicas:
            raise ValueError(f'rank must be in [0, {num_replicas}), got {rank}')
        self.size, self.rank, self.num_replicas, self.seed, self.start = size, rank, num_replicas, seed, start

    def _epoch(self, epoch: int) -> torch.Tensor:
        perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        return perm[self.rank::self.num_replicas] if self.size >= self.num_replicas else perm

    def __iter__(self) -> Iterator[int]:
        per_epoch = len(self._epoch(0))
        epoch, offset = divmod(self.start, per_epoch)
        while True:
            for idx in self._epoch(epoch)[offset:].tolist():
                yield idx
            epoch, offset = epoch + 1, 0


class StatsCollector:
    """Running count / sum / sum of squares of named scalars, reduced over processes per tick."""

    def __init__(self, device: torch.device, num_gpus: int = 1):
        self.device, self.num_gpus = device, num_gpus
        self.moments: Dict[str, list] = dict()

    def add(self, name: str, value: torch.Tensor) -> None:
        value = float(value)
        m = self.moments.setdefault(name, [0.0, 0.0, 0.0])
        m[0] += 1
        m[1] += value
        m[2] += value * value

    def flush(self) -> Dict[str, Dict[str, float]]:
        """{name: {'num', 'mean', 'std'}} over all processes since the last flush."""
        names = sorted(self.moments)
        packed = torch.tensor([self.moments[n] for n in names] or [[0.0, 0.0, 0.0]], dtype=torch.float64)
        if self.num_gpus > 1:
            dev = self.device if self.device.type == 'cuda' else torch.device('cpu')
            packed = packed.to(dev)
            torch.distributed.all_reduce(packed)
            packed = packed.cpu()
        self.moments = dict()
        out = dict()
        for name, (num, total, total_sq) in zip(names, packed.tolist()):
            mean = total / num
            out[name] = dict(num=num, mean=mean, std=float(np.sqrt(max(total_sq / num - mean * mean, 0.0))))
        return out


class TickLogger:
    """Per tick: a progress line, one stats.jsonl record, and tensorboard scalars if available."""

    SHOWN = (('G', 'Loss/G/loss'), ('D', 'Loss/D/loss'), ('adv', 'Loss/G/adv'), ('content', 'Loss/G/content'),
             ('style', 'Loss/G/style'), ('id', 'Loss/G/id'), ('dreg', 'Loss/G/density_reg'), ('geom', 'Loss/G/geom'),
             ('r1', 'Loss/D/r1'))

    def __init__(self, run_dir: str, rank: int = 0, print_fn=print):
        self.rank, self.print_fn = rank, print_fn
        self.stats_file = self.writer = None
        if rank != 0:
            return
        self.stats_file = open(os.path.join(run_dir, 'stats.jsonl'), 'at', encoding='utf-8')
        try:
            # Imported here: seconds to import, only rank 0 logs, and stats.jsonl is written without it.
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(run_dir)
        except ImportError:
            print_fn('tensorboard is not installed: skipping tensorboard events (stats.jsonl is still written).')

    def tick(self, cur_tick: int, iteration: int, cur_nimg: int, sec_per_iter: float, total_sec: float,
             stats: Dict[str, Dict[str, float]], device: torch.device) -> None:
        cpu_gb = psutil.Process(os.getpid()).memory_info().rss / 2**30
        gpu_gb = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == 'cuda' else 0.0
        if device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(device)
        if self.rank != 0:
            return
        fields = [f'tick {cur_tick:<4d}', f'kimg {cur_nimg / 1000:<7.3f}', f'iter {iteration:<7d}',
                  f'time {total_sec:<8.1f}', f's/iter {sec_per_iter:<7.3f}']
        fields += [f'{label} {stats[key]["mean"]:<9.4g}' for label, key in self.SHOWN if key in stats]
        fields += [f'cpumem {cpu_gb:<5.2f}', f'gpumem {gpu_gb:<5.2f}']
        self.print_fn(' '.join(fields))
        record = dict(stats)
        record.update({'Progress/tick': cur_tick, 'Progress/iteration': iteration, 'Progress/kimg': cur_nimg / 1000,
                       'Timing/sec_per_iter': sec_per_iter, 'Resources/cpu_mem_gb': cpu_gb,
                       'Resources/peak_gpu_mem_gb': gpu_gb, 'timestamp': time.time()})
        self.stats_file.write(json.dumps(record) + '\n')
        self.stats_file.flush()
        if self.writer is not None:
            for name, value in stats.items():
                self.writer.add_scalar(name, value['mean'], global_step=iteration)
            self.writer.add_scalar('Timing/sec_per_iter', sec_per_iter, global_step=iteration)
            self.writer.flush()

    def close(self) -> None:
        if self.stats_file is not None:
            self.stats_file.close()
        if self.writer is not None:
            self.writer.close()


def save_triples_grid(path: str, content: torch.Tensor, exemplar: torch.Tensor, stylised: torch.Tensor) -> None:
    """One row per sample: content | exemplar | stylised, each (N, 3, H, W) in [-1, 1], to a PNG."""
    if not (content.shape == exemplar.shape == stylised.shape) or content.ndim != 4:
        raise ValueError(f'grid images must share one (N, 3, H, W) shape, got {tuple(content.shape)}, '
                         f'{tuple(exemplar.shape)}, {tuple(stylised.shape)}')
    rows = torch.cat([content, exemplar, stylised], dim=3)       # (N, 3, H, 3W)
    grid = torch.cat(list(rows), dim=1)                           # (3, N*H, 3W)
    pixels = (grid.float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    with dnnlib.util.atomic_output(path) as tmp_path:  # a viewer never sees half a PNG
        PIL.Image.fromarray(pixels, 'RGB').save(tmp_path, format='PNG')
