"""The style-adaptation training loop (one process per GPU; EG3D's loop structure).

Per iteration: draw a content batch (w+, camera) and a style batch (exemplars, cameras); run the
phases Gmain, Greg (every `G_reg_interval` iterations), Dmain, Dreg (every `D_reg_interval`) of
`training.loss.PStyleLoss`; all-reduce gradients across processes; Adam steps; update G_ema.
Every tick: a progress line and a stats.jsonl record; every few ticks an image grid of content /
exemplar / stylised triples and an atomically written snapshot that resumes exactly.
"""

import os
import time
from typing import Callable, Optional, Sequence

import numpy as np
import torch

import dnnlib
from training import trainable
from training.adaptation_setup import prepare_networks
from training.content import LatentFolderContent, SampledContent
from training.domain_adaptation import mean_domain_code
from training.loss import PStyleLoss
from training.perceptual import IdentityEncoder, VGG19Features
from training.progress import ExemplarSampler, StatsCollector, TickLogger, save_triples_grid
from torch_utils import distributed
from torch_utils.safe_pickle import atomic_write_pickle
from training.snapshot import (build_snapshot, capture_rng_state, kimg_tag, optimizer_state_to_cpu, restore_rng_state,
                               snapshot_path)


class NonFiniteLossError(RuntimeError):
    """A loss became nan or inf: training stops, keeping the snapshots written so far."""


def check_finite_losses(tick_stats: dict, cur_tick: int, cur_nimg: int, last_snapshot: Optional[str]) -> None:
    """Raise NonFiniteLossError naming the loss if any tick mean is nan or inf (every process sees the same)."""
    bad = [name for name, stat in tick_stats.items() if not np.isfinite(stat['mean'])]
    if bad:
        kept = f'the last good snapshot is {last_snapshot}' if last_snapshot else 'no snapshot had been written yet'
        raise NonFiniteLossError(f'{", ".join(bad)} became {tick_stats[bad[0]]["mean"]} at tick {cur_tick} '
                                 f'(kimg {cur_nimg / 1000:g}); training stopped without writing this tick and '
                                 f'{kept}; lower --glr/--dlr or check the dataset, then --resume from it')


def build_perceptual(perceptual_kwargs: dict, device: torch.device, need_identity: bool = True):
    """(VGG-19 features, ArcFace embedding or None) for the losses: weights by path/URL, or random
    stand-ins only when `perceptual_kwargs['random']` says so explicitly. Random stand-ins are
    drawn from a fixed seed, so every process and every resumed run gets the same ones."""
    random_ok = bool(perceptual_kwargs.get('random', False))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(perceptual_kwargs.get('random_seed', 0))
        vgg = VGG19Features(perceptual_kwargs.get('vgg'), allow_random_weights=random_ok)
        arcface = (IdentityEncoder(perceptual_kwargs.get('arcface'), allow_random_weights=random_ok)
                   if need_identity else None)
    return vgg.to(device), (arcface.to(device) if arcface is not None else None)


def make_optimizer(params: Sequence[torch.nn.Parameter], opt_kwargs: dict, reg_interval: Optional[int]):
    """Adam with EG3D's lazy-regularisation correction of lr and betas."""
    kwargs = dnnlib.EasyDict(opt_kwargs)
    if reg_interval is not None:
        ratio = reg_interval / (reg_interval + 1)
        kwargs.lr = kwargs.lr * ratio
        kwargs.betas = [beta ** ratio for beta in kwargs.betas]
    return dnnlib.util.construct_class_by_name(params=list(params), **kwargs)


def sync_gradients(params: Sequence[torch.nn.Parameter], num_gpus: int) -> None:
    """Average gradients over processes (one flat all-reduce) and sanitise them as EG3D does."""
    params = [p for p in params if p.grad is not None and p.numel() > 0]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    if num_gpus > 1:
        torch.distributed.all_reduce(flat)
        flat /= num_gpus
    torch.nan_to_num(flat, nan=0, posinf=1e5, neginf=-1e5, out=flat)
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad.copy_(g.reshape(p.shape))


def _phases(iteration: int, G_reg_interval: Optional[int], D_reg_interval: Optional[int], train_D: bool) -> list:
    """(phase, gain) pairs of one iteration, with EG3D's lazy regularisation: a separate reg phase
    every `interval` iterations, its loss scaled by the interval; None = regularise every step."""
    phases = [('Gmain', 1)] if G_reg_interval is not None else [('Gboth', 1)]
    if G_reg_interval is not None and iteration % G_reg_interval == 0:
        phases.append(('Greg', G_reg_interval))
    if train_D:
        phases.append(('Dmain', 1) if D_reg_interval is not None else ('Dboth', 1))
        if D_reg_interval is not None and iteration % D_reg_interval == 0:
            phases.append(('Dreg', D_reg_interval))
    return phases


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, cur_nimg: int, batch_size: int, ema_kimg: float,
               ema_rampup: Optional[float]) -> None:
    """EG3D's G_ema: parameters follow G with half-life `ema_kimg` (shorter early on with the ramp-up);
    buffers (w_avg, stored domain codes) are copied."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, ema_beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def training_loop(run_dir: str, training_set_kwargs: dict, data_loader_kwargs: dict, G_kwargs: dict, D_kwargs: dict,
                  G_opt_kwargs: dict, D_opt_kwargs: dict, loss_kwargs: dict, perceptual_kwargs: dict,
                  content: str = 'sampled', truncation_psi: float = 0.7, method: str = 'pstyle',
                  domain: Optional[str] = None, domain_kwargs: Optional[dict] = None,
                  train_parts: Sequence[str] = trainable.PSTYLE_PARTS,
                  G_reg_interval: Optional[int] = 4, D_reg_interval: Optional[int] = 16, random_seed: int = 0,
                  num_gpus: int = 1, rank: int = 0, batch_size: int = 1, batch_gpu: int = 1, ema_kimg: float = 0.3125,
                  ema_rampup: Optional[float] = 0.05, total_kimg: float = 120, kimg_per_tick: float = 0.2,
                  image_snapshot_ticks: Optional[int] = 50, network_snapshot_ticks: Optional[int] = 50,
                  resume_pkl: Optional[str] = None, resume_d_pkl: Optional[str] = None, grid_rows: int = 4,
                  evaluate_snapshot: Optional[Callable[..., None]] = None, device: Optional[torch.device] = None,
                  print_fn=print) -> dict:
    """Train one style domain; returns {'G', 'D', 'G_ema', 'G_src', 'iteration'} of this process.

    Several processes (`num_gpus`) must have joined the process group (`torch_utils.distributed.launch`);
    `device` is this process's (default: GPU `rank` when CUDA is available, else the CPU).

    `evaluate_snapshot`, when given, is called by every process after each network snapshot as
    `evaluate_snapshot(G_ema=, G_kwargs=, snapshot_pkl=, device=, log=)`: G_kwargs select the trained
    domain at alpha 1 ({} for --method=finetune), `log` prints on rank 0 (train.py builds it from
    `--metrics` with `metrics.metric_main.snapshot_evaluator`).
    """
    start_time = time.time()
    if device is None:
        device = torch.device('cuda', rank) if torch.cuda.is_available() else torch.device('cpu')
    if method not in ('pstyle', 'finetune'):
        raise ValueError(f'method must be "pstyle" or "finetune", got "{method}"')
    if batch_size % (batch_gpu * num_gpus) != 0:
        raise ValueError(f'batch {batch_size} must be a multiple of batch_gpu {batch_gpu} x gpus {num_gpus}')
    rounds = batch_size // (batch_gpu * num_gpus)
    torch.manual_seed(random_seed * num_gpus + rank)
    np.random.seed(random_seed * num_gpus + rank)
    loop_gen = torch.Generator().manual_seed(random_seed * num_gpus + rank)  # content draws
    log = print_fn if rank == 0 else (lambda *args, **kwargs: None)

    training_set = dnnlib.util.construct_class_by_name(**training_set_kwargs)
    use_domain = method == 'pstyle'
    encoder_init = perceptual_kwargs.get('arcface') if not perceptual_kwargs.get('random') else None
    nets = prepare_networks(resume_pkl, G_kwargs, D_kwargs, method, domain, domain_kwargs or {}, encoder_init,
                            resume_d_pkl=resume_d_pkl)
    resume_state = nets.pop('resume_state')
    G, D, G_ema, G_src = (nets[k].to(device) for k in ('G', 'D', 'G_ema', 'G_src'))
    G_src.eval().requires_grad_(False)
    G_ema.eval().requires_grad_(False)
    G.train()
    D.train()
    if getattr(G, 'encoder', None) is not None:
        # Batch-norm statistics stay frozen: batch 1 would make them noise, and frozen they are
        # identical in every process.
        G.encoder.eval()
    if num_gpus > 1:  # every rank starts from rank 0's weights
        for module in (G, D, G_ema, G_src):
            for tensor in list(module.parameters()) + list(module.buffers()):
                torch.distributed.broadcast(tensor.data, src=0)

    G_named = trainable.select_parameters(G, train_parts)
    G_params = [p for _, p in G_named]
    train_D = 'D' in train_parts
    D_params = list(D.parameters()) if train_D else []
    G.requires_grad_(False)
    D.requires_grad_(False)
    G_opt = make_optimizer(G_params, G_opt_kwargs, G_reg_interval)
    D_opt = make_optimizer(D_params, D_opt_kwargs, D_reg_interval) if train_D else None
    log(f'Training {len(G_named)} generator tensors ({sum(p.numel() for p in G_params):,} values)'
        f'{" and D" if train_D else ""}; method {method}.')

    if content == 'sampled':
        cameras = np.stack([training_set.get_label(i) for i in range(len(training_set))])
        content_source = SampledContent(G_src, cameras, truncation_psi=truncation_psi)
    else:
        content_source = LatentFolderContent(content, G_src.backbone.num_ws, G_src.w_dim)
    vgg, arcface = build_perceptual(perceptual_kwargs, device, need_identity=loss_kwargs.get('id_weight', 0.5) > 0)
    loss = PStyleLoss(G=G, D=D, G_src=G_src, vgg=vgg, arcface=arcface, use_domain=use_domain, **loss_kwargs)
    for net in (G, G_ema, G_src):  # grids and snapshots render at the training resolution
        net.neural_rendering_resolution = loss.neural_rendering_resolution

    iteration, cur_nimg, cur_tick = 0, 0, 0
    if resume_state is not None:
        iteration, cur_nimg, cur_tick = resume_state['iteration'], resume_state['cur_nimg'], resume_state['cur_tick']
        G_opt.load_state_dict(resume_state['G_opt'])
        if train_D:
            D_opt.load_state_dict(resume_state['D_opt'])
        rng_states = resume_state['rng']
        if len(rng_states) == num_gpus:
            restore_rng_state(rng_states[rank], device, {'loop': loop_gen})
        else:
            log(f'Snapshot was written by {len(rng_states)} processes, this run has {num_gpus}: RNG streams restart.')
        log(f'Resuming from iteration {iteration} ({cur_nimg} images).')

    sampler = ExemplarSampler(len(training_set), rank=rank, num_replicas=num_gpus, seed=random_seed,
                              start=iteration * rounds * batch_gpu)
    # Own generator: creating the iterator draws a worker seed, which must not shift the global stream.
    loader_rng = torch.Generator().manual_seed(random_seed)
    data_iter = iter(torch.utils.data.DataLoader(training_set, sampler=sampler, batch_size=batch_gpu,
                                                 generator=loader_rng, **data_loader_kwargs))
    grid = None
    if rank == 0:
        grid = _make_grid_inputs(training_set, content_source, grid_rows, random_seed, device)
        save_triples_grid(os.path.join(run_dir, 'fakes_init.png'), *_render_grid(G_ema, G_src, grid, use_domain))
    stats = StatsCollector(device, num_gpus)
    logger = TickLogger(run_dir, rank=rank, print_fn=log)

    total_nimg = int(round(total_kimg * 1000))
    last_snapshot = resume_pkl if resume_state is not None else None
    tick_start_nimg, tick_start_time = cur_nimg, time.time()
    tick_start_iter = iteration
    while cur_nimg < total_nimg:
        batch = []
        for _ in range(rounds):
            img, c = next(data_iter)
            exemplar = img.to(device).to(torch.float32) / 127.5 - 1
            ws, content_c = content_source(batch_gpu, device, loop_gen)
            batch.append((exemplar, c.to(device).to(torch.float32), ws, content_c))

        fakes = [None] * rounds
        for phase, gain in _phases(iteration, G_reg_interval, D_reg_interval, train_D):
            opt, params = (G_opt, G_params) if phase.startswith('G') else (D_opt, D_params)
            opt.zero_grad(set_to_none=True)
            for p in params:
                p.requires_grad_(True)
            for r, (exemplar, exemplar_c, ws, content_c) in enumerate(batch):
                out, renders = loss.accumulate_gradients(phase, exemplar, exemplar_c, ws, content_c,
                                                         gain=gain / rounds, fake=fakes[r])
                if renders is not None:
                    fakes[r] = renders['fake']
                for name, value in out.items():
                    stats.add(name, value)
            for p in params:
                p.requires_grad_(False)
            sync_gradients(params, num_gpus)
            opt.step()
        update_ema(G_ema, G, cur_nimg, batch_size, ema_kimg, ema_rampup)

        iteration += 1
        cur_nimg += batch_size
        done = cur_nimg >= total_nimg
        if not done and cur_nimg < tick_start_nimg + kimg_per_tick * 1000:
            continue

        tick_time = time.time() - tick_start_time
        tick_stats = stats.flush()
        logger.tick(cur_tick=cur_tick, iteration=iteration, cur_nimg=cur_nimg,
                    sec_per_iter=tick_time / max(iteration - tick_start_iter, 1),
                    total_sec=time.time() - start_time, stats=tick_stats, device=device)
        check_finite_losses(tick_stats, cur_tick, cur_nimg, last_snapshot)
        if rank == 0 and image_snapshot_ticks is not None and (done or cur_tick % image_snapshot_ticks == 0):
            save_triples_grid(os.path.join(run_dir, f'fakes{kimg_tag(cur_nimg)}.png'),
                              *_render_grid(G_ema, G_src, grid, use_domain))
        if network_snapshot_ticks is not None and (done or cur_tick % network_snapshot_ticks == 0):
            if use_domain:
                _store_domain_code(G, G_ema, domain, training_set, device)
            rng_states = distributed.all_gather(capture_rng_state(device, {'loop': loop_gen}), num_gpus)
            if rank == 0:
                state = dict(iteration=iteration, cur_nimg=cur_nimg, cur_tick=cur_tick + 1,
                             G_opt=optimizer_state_to_cpu(G_opt),
                             D_opt=optimizer_state_to_cpu(D_opt) if train_D else None, rng=rng_states,
                             method=method, domain=domain)
                data = build_snapshot(dict(G=G, D=D, G_ema=G_ema, G_src=G_src), training_set_kwargs, state)
                atomic_write_pickle(data, snapshot_path(run_dir, cur_nimg))
            last_snapshot = snapshot_path(run_dir, cur_nimg)
            if evaluate_snapshot is not None:
                styled = dict(domain=domain, alpha=1) if use_domain else {}
                evaluate_snapshot(G_ema=G_ema, G_kwargs=styled, snapshot_pkl=last_snapshot, device=device, log=log)
        cur_tick += 1
        tick_start_nimg, tick_start_time, tick_start_iter = cur_nimg, time.time(), iteration
    logger.close()
    log('Exiting...')
    return dict(G=G, D=D, G_ema=G_ema, G_src=G_src, iteration=iteration)


@torch.no_grad()
def _store_domain_code(G, G_ema, domain: str, training_set, device: torch.device, chunk: int = 64) -> None:
    """Store the domain's mean code over all training exemplars (G_ema's encoder) in G and G_ema,
    so that `domain=<name>` renders the style without exemplars. Every process computes the same."""
    total = 0
    for start in range(0, len(training_set), chunk):
        idx = range(start, min(start + chunk, len(training_set)))
        images = torch.stack([torch.as_tensor(np.array(training_set[i][0])) for i in idx])
        exemplars = images.to(device).to(torch.float32) / 127.5 - 1
        total = total + mean_domain_code(G_ema.encoder, exemplars) * len(idx)
    code = total / len(training_set)
    G.set_domain_code(domain, code)
    G_ema.set_domain_code(domain, code)


def _make_grid_inputs(training_set, content_source, rows: int, seed: int, device: torch.device) -> dict:
    """Fixed grid inputs: the first `rows` exemplars and `rows` content samples of a seeded stream."""
    rows = min(rows, len(training_set))
    items = [training_set[i] for i in range(rows)]
    exemplar = torch.stack([torch.as_tensor(np.array(img)) for img, _ in items]).to(device).float() / 127.5 - 1
    ws, c = content_source(rows, device, torch.Generator().manual_seed(seed))
    return dict(exemplar=exemplar, ws=ws, c=c)


@torch.no_grad()
def _render_grid(G_ema, G_src, grid: dict, use_domain: bool):
    """(content, exemplar, stylised) image batches; rendered on a forked RNG so that writing a grid
    never changes the training run's random stream."""
    with torch.random.fork_rng(devices=[grid['ws'].device] if grid['ws'].device.type == 'cuda' else []):
        content = G_src.synthesis(grid['ws'], grid['c'], noise_mode='const')['image']
        domain = dict(domain=grid['exemplar']) if use_domain else dict()
        stylised = G_ema.synthesis(grid['ws'], grid['c'], noise_mode='const', **domain)['image']
    return content, grid['exemplar'], stylised
