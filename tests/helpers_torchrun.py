"""Started by tests/test_torchrun.py under torchrun: train.py's command line, each rank saving its final weights.

python -m torch.distributed.run --nproc_per_node=2 --standalone tests/helpers_torchrun.py OUT_DIR TRAIN_ARGS...
"""

import os
import sys

import torch

import train


def _save_weights_after(subprocess_fn, out_dir: str):
    """`subprocess_fn` that also writes this rank's G / D / G_ema weights to OUT_DIR/rank<N>.pt."""
    def run(rank, device, c):
        result = subprocess_fn(rank, device, c)
        state = {f'{name}.{key}': value.detach().clone() for name in ('G', 'D', 'G_ema')
                 for key, value in result[name].state_dict().items()}
        torch.save(state, os.path.join(out_dir, f'rank{rank}.pt'))
        return result
    return run


if __name__ == '__main__':
    train.subprocess_fn = _save_weights_after(train.subprocess_fn, sys.argv[1])  # torchrun runs it in this process
    train.main(sys.argv[2:])  # pylint: disable=no-value-for-parameter
