"""The metric registry: StyleGAN3's names for the distribution metrics, ours for the 3-D / stylisation ones.

`calc_metric(name, **opts_kwargs)` runs one metric and returns StyleGAN3's result record;
`report_metric(result, run_dir, snapshot_pkl)` prints it as one JSON line and appends that line to
`<run_dir>/metric-<name>.jsonl`; `snapshot_evaluator(names, ...)` does both for every training
snapshot (train.py --metrics). Formulas and protocols: docs/metrics.md.
"""

import json
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch

import dnnlib
from metrics import (frechet_inception_distance, geometry_preservation, identity_similarity, inception_score,
                     kernel_inception_distance, landmark_metrics, multiview_consistency, precision_recall)
from metrics.metric_options import MetricOptions

_metric_dict: Dict[str, Callable[[MetricOptions], dict]] = {}
# Metrics that compare image distributions, and so also evaluate a folder of images (--images).
DISTRIBUTION_METRICS = ('fid50k_full', 'kid50k_full', 'pr50k3_full', 'is50k')


def register_metric(fn: Callable[[MetricOptions], dict]) -> Callable:
    _metric_dict[fn.__name__] = fn
    return fn


def is_valid_metric(metric: str) -> bool:
    return metric in _metric_dict


def list_valid_metrics() -> List[str]:
    return list(_metric_dict.keys())


def format_time(seconds: float) -> str:
    """'1h 02m 03s' / '2m 03s' / '3s', as StyleGAN3 prints total_time_str."""
    s = int(round(seconds))
    if s < 60:
        return f'{s}s'
    if s < 3600:
        return f'{s // 60}m {s % 60:02d}s'
    return f'{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s'


def calc_metric(metric: str, **kwargs) -> dnnlib.EasyDict:
    """Run `metric` with `metrics.metric_options.MetricOptions(**kwargs)`; every process must call it."""
    if not is_valid_metric(metric):
        raise ValueError(f'unknown metric "{metric}"; valid metrics: {", ".join(list_valid_metrics())}')
    opts = MetricOptions(**kwargs)
    if opts.image_folder is not None and metric not in DISTRIBUTION_METRICS:
        raise ValueError(f'{metric} renders views of a network, so it cannot evaluate a folder of images; '
                         f'with --images use {", ".join(DISTRIBUTION_METRICS)}')
    start = time.time()
    results = _metric_dict[metric](opts)
    total_time = time.time() - start
    if opts.num_gpus > 1:  # every process reports the time of the slowest one
        total = torch.tensor(total_time, dtype=torch.float64, device=opts.device)  # NCCL reduces GPU tensors only
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.MAX)
        total_time = float(total)
    return dnnlib.EasyDict(results=dnnlib.EasyDict(results), metric=metric, total_time=total_time,
                           total_time_str=format_time(total_time), num_gpus=opts.num_gpus,
                           num_images=dict(opts.num_images))


def report_metric(result_dict: dict, run_dir: Optional[str] = None, snapshot_pkl: Optional[str] = None) -> str:
    """Print the result as one JSON line and append it to <run_dir>/metric-<name>.jsonl; returns the line."""
    metric = result_dict['metric']
    if not is_valid_metric(metric):
        raise ValueError(f'unknown metric "{metric}"')
    if run_dir is not None and snapshot_pkl is not None and os.path.isfile(snapshot_pkl):
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    line = json.dumps(dict(result_dict, snapshot_pkl=snapshot_pkl, timestamp=time.time()))
    print(line)
    if run_dir is not None and os.path.isdir(run_dir):
        with open(os.path.join(run_dir, f'metric-{metric}.jsonl'), 'at') as f:
            f.write(line + '\n')
    return line


def snapshot_evaluator(metrics: Sequence[str], dataset_kwargs: dict, num_gpus: int, rank: int, run_dir: str,
                       weights: Optional[dict] = None) -> Optional[Callable[..., None]]:
    """The `evaluate_snapshot` hook of `training.training_loop.training_loop` for `metrics` (None for none).

    The hook runs every metric on a snapshot's G_ema (every process calls it) with the run's dataset;
    rank 0 reports each result to `<run_dir>/metric-<name>.jsonl` (`report_metric`).
    """
    if not metrics:
        return None
    metrics = list(metrics)

    def evaluate_snapshot(G_ema: torch.nn.Module, G_kwargs: dict, snapshot_pkl: str, device: torch.device,
                          log: Callable[[str], None]) -> None:
        log(f'Evaluating metrics: {", ".join(metrics)}...')
        for metric in metrics:
            result = calc_metric(metric, G=G_ema, G_kwargs=G_kwargs, dataset_kwargs=dataset_kwargs,
                                 num_gpus=num_gpus, rank=rank, device=device, weights=weights)
            if rank == 0:
                report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot_pkl)
    return evaluate_snapshot

# ----------------------------------------------------------------------------
# Distribution metrics: StyleGAN3's names and settings. "_full" = against the whole dataset.


@register_metric
def fid50k_full(opts: MetricOptions) -> dict:
    return dict(fid50k_full=frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=50000))


@register_metric
def kid50k_full(opts: MetricOptions) -> dict:
    kid = kernel_inception_distance.compute_kid(opts, max_real=1000000, num_gen=50000, num_subsets=100,
                                                max_subset_size=1000)
    return dict(kid50k_full=kid)


@register_metric
def pr50k3_full(opts: MetricOptions) -> dict:
    pr = precision_recall.compute_pr(opts, max_real=200000, num_gen=50000, nhood_size=3)
    return dict(pr50k3_full_precision=pr['precision'], pr50k3_full_recall=pr['recall'])


@register_metric
def is50k(opts: MetricOptions) -> dict:
    mean, std = inception_score.compute_is(opts, num_gen=50000, num_splits=10)
    return dict(is50k_mean=mean, is50k_std=std)

# ----------------------------------------------------------------------------
# Stylisation and 3-D metrics (docs/metrics.md has each formula).


@register_metric
def style_fid5k_full(opts: MetricOptions) -> dict:
    """FID of 5k stylised samples (alpha = 1) against the whole style dataset (--data)."""
    if opts.G_kwargs.get('domain') is None:
        raise ValueError('style_fid5k_full renders stylised samples: give a network with a stored domain (--domain) '
                         'or an exemplar encoder (--exemplar)')
    fid = frechet_inception_distance.compute_fid(opts, max_real=None, num_gen=5000, G_kwargs=dict(alpha=1))
    return dict(style_fid5k_full=fid)


@register_metric
def identity1k(opts: MetricOptions) -> dict:
    return dict(identity1k=identity_similarity.compute_identity(opts, num_gen=1000))


def _register_several(name: str, compute: Callable[[MetricOptions, int], Dict[str, float]],
                      num_gen: int) -> None:
    """Register a metric with several numbers, keyed <name>_<quantity> as StyleGAN3 keys pr50k3_full's."""
    def metric(opts: MetricOptions) -> dict:
        return {f'{name}_{k}': v for k, v in compute(opts, num_gen).items()}
    metric.__name__ = name
    register_metric(metric)


_register_several('identity_landmarks1k', landmark_metrics.compute_landmark_identity, num_gen=1000)
_register_several('multiview1k', multiview_consistency.compute_multiview, num_gen=1000)
_register_several('geometry1k', geometry_preservation.compute_geometry, num_gen=1000)
_register_several('pose1k', landmark_metrics.compute_pose_accuracy, num_gen=1000)
