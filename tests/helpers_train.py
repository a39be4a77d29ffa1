"""Small EG3D-format style datasets for the training tests (folders of PNGs + dataset.json)."""

import json
import os

import numpy as np
import PIL.Image
import torch

from camera_utils import camera_label
import train


def make_style_dataset(path: str, count: int = 6, resolution: int = 128, labels: bool = True, seed: int = 0) -> str:
    """`count` flat-coloured 'style' portraits: a bright disc on a dark two-tone background,
    each with a camera label (yaw spread over +-0.3 rad). Returns `path`."""
    os.makedirs(path, exist_ok=True)
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    entries = []
    for i in range(count):
        img = np.zeros([resolution, resolution, 3], dtype=np.float32)
        img[:] = rng.uniform(0.0, 0.3, size=3)
        img[yy > 0.7] = rng.uniform(0.2, 0.5, size=3)
        disc = (xx - 0.5 - 0.1 * rng.randn()) ** 2 + (yy - 0.45) ** 2 < 0.09
        img[disc] = rng.uniform(0.7, 1.0, size=3)
        name = f'img{i:08d}.png'
        PIL.Image.fromarray((img * 255).astype(np.uint8), 'RGB').save(os.path.join(path, name))
        entries.append([name, camera_label(0.3 * (2 * i / max(count - 1, 1) - 1))[0].tolist()])
    if labels:
        with open(os.path.join(path, 'dataset.json'), 'w', encoding='utf-8') as f:
            json.dump({'labels': entries}, f)
    return path


def build_config(args: list):
    """train.py's (loop config, run description) for command-line `args`, without running."""
    ctx = train.main.make_context('train.py', list(args))
    opts = train.apply_presets(ctx, ctx.params)
    return train.validate_and_build(opts)


def ddp_worker(rank: int, device: torch.device, c: dict, out_dir: str) -> None:
    """Run by the multi-process test in each process: train as one rank, then save that rank's weights."""
    result = train.subprocess_fn(rank, device, c)
    state = {f'{name}.{key}': value.detach().clone() for name in ('G', 'D', 'G_ema')
             for key, value in result[name].state_dict().items()}
    torch.save(state, os.path.join(out_dir, f'rank{rank}.pt'))
