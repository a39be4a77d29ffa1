"""PyTorch plumbing shared by networks, losses and the training loop."""

import contextlib
import ctypes
import warnings
from typing import Optional, Sequence

import torch


@contextlib.contextmanager
def suppress_tracer_warnings():
    """Silence TracerWarnings raised by shape checks while tracing (torch.jit / torch.compile)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', category=torch.jit.TracerWarning)
        yield


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[Optional[int]], name: str = 'tensor') -> None:
    """Raise ValueError unless `tensor` has `ref_shape` (None = any size in that dimension)."""
    if tensor.ndim != len(ref_shape):
        raise ValueError(f'{name} must have {len(ref_shape)} dimensions {_fmt(ref_shape)}, '
                         f'got shape {tuple(tensor.shape)}')
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor):
            with suppress_tracer_warnings():
                ok = bool(torch.equal(torch.as_tensor(size), ref_size))
        elif isinstance(size, torch.Tensor):
            with suppress_tracer_warnings():
                ok = bool(torch.equal(size, torch.as_tensor(ref_size)))
        else:
            ok = size == ref_size
        if not ok:
            raise ValueError(f'{name} must have shape {_fmt(ref_shape)}, got {tuple(tensor.shape)} '
                             f'(dimension {idx} is {int(size)}, expected {int(ref_size)})')


def assert_finite(tensor: torch.Tensor, name: str = 'tensor') -> None:
    """Raise ValueError if `tensor` holds NaN or Inf."""
    if not torch.isfinite(tensor).all():
        raise ValueError(f'{name} contains NaN or Inf values')


def _fmt(shape) -> str:
    return '(' + ', '.join('N' if s is None else str(int(s)) for s in shape) + ')'


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Would autograd record an operation on these tensors?"""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def is_channels_last(x: torch.Tensor) -> bool:
    """Is the 4-D tensor x stored channels-last (NHWC), and not also plainly contiguous (C = 1 or H = W = 1)?"""
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _load_malloc_trim():
    try:
        return getattr(ctypes.CDLL(None), 'malloc_trim', None)  # glibc only
    except (OSError, TypeError):  # no C library handle (Windows)
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_freed_cpu_memory() -> None:
    """Give the heap memory that freed CPU tensors left behind back to the OS (glibc's malloc_trim).

    glibc keeps freed blocks below its mmap threshold (which grows to 32 MB) in the process heap; the
    next stage's differently sized tensors rarely reuse them, so each stage of an image would add its
    leftovers to the peak RSS (about 0.13 GB for FFHQ-512). Results are unaffected; a no-op without glibc.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
