"""Fused bias + activation + gain + clamp, EG3D's `bias_act` (one pass instead of four)."""

import os
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from dnnlib.util import EasyDict
from torch_utils import custom_ops

# `cuda_idx` is the activation's number in the compiled kernels; `ref` names the tensor ('x' input,
# 'y' output) their gradient is computed from; `has_2nd_grad` is False where the second derivative
# vanishes almost everywhere.
activation_funcs = {
    'linear':   EasyDict(func=lambda x, **_: x,                        def_alpha=0,   def_gain=1,
                         cuda_idx=1, ref='',  has_2nd_grad=False),
    'relu':     EasyDict(func=lambda x, **_: F.relu(x),                def_alpha=0,   def_gain=np.sqrt(2),
                         cuda_idx=2, ref='y', has_2nd_grad=False),
    'lrelu':    EasyDict(func=lambda x, alpha, **_: F.leaky_relu(x, alpha), def_alpha=0.2, def_gain=np.sqrt(2),
                         cuda_idx=3, ref='y', has_2nd_grad=False),
    'tanh':     EasyDict(func=lambda x, **_: torch.tanh(x),            def_alpha=0,   def_gain=1,
                         cuda_idx=4, ref='y', has_2nd_grad=True),
    'sigmoid':  EasyDict(func=lambda x, **_: torch.sigmoid(x),         def_alpha=0,   def_gain=1,
                         cuda_idx=5, ref='y', has_2nd_grad=True),
    'elu':      EasyDict(func=lambda x, **_: F.elu(x),                 def_alpha=0,   def_gain=1,
                         cuda_idx=6, ref='y', has_2nd_grad=True),
    'selu':     EasyDict(func=lambda x, **_: F.selu(x),                def_alpha=0,   def_gain=1,
                         cuda_idx=7, ref='y', has_2nd_grad=True),
    'softplus': EasyDict(func=lambda x, **_: F.softplus(x),            def_alpha=0,   def_gain=1,
                         cuda_idx=8, ref='y', has_2nd_grad=True),
    'swish':    EasyDict(func=lambda x, **_: torch.sigmoid(x) * x,     def_alpha=0,   def_gain=np.sqrt(2),
                         cuda_idx=9, ref='x', has_2nd_grad=True),
}


def _check_args(x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act: str, impl: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'bias_act: x must be a torch.Tensor, got {type(x).__name__}')
    if act not in activation_funcs:
        raise ValueError(f'bias_act: unknown activation "{act}"; expected one of {sorted(activation_funcs)}')
    if impl not in ('ref', 'cuda'):
        raise ValueError(f'bias_act: impl must be "ref" or "cuda", got "{impl}"')
    if b is not None:
        if not 0 <= dim < x.ndim:
            raise ValueError(f'bias_act: dim={dim} is out of range for x of shape {tuple(x.shape)}')
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f'bias_act: b must have shape ({x.shape[dim]},) to match x.shape[{dim}], '
                             f'got {tuple(b.shape)}')


def _resolve_params(act: str, alpha: Optional[float], gain: Optional[float], clamp: Optional[float]):
    """Fill in the activation's defaults; clamp < 0 means "no clamping"."""
    spec = activation_funcs[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    return spec, alpha, gain, clamp


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = 'linear',
             alpha: Optional[float] = None, gain: Optional[float] = None, clamp: Optional[float] = None,
             impl: str = 'cuda') -> torch.Tensor:
    """`clamp(act(x + b) * gain, -clamp, clamp)`.

    Args:
        x: input of any shape, e.g. (N, C, H, W).
        b: (x.shape[dim],) bias added along `dim`, or None.
        dim: the dimension of `x` that `b` runs along.
        act: one of `activation_funcs` ('linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu', 'selu',
            'softplus', 'swish').
        alpha: the activation's shape parameter (lrelu slope); None = its default (0.2 for lrelu).
        gain: output scale; None = the activation's default (sqrt(2) for relu, lrelu and swish, else 1).
        clamp: clamp the output to [-clamp, clamp]; None = no clamping.
        impl: 'cuda' = compiled kernel for the tensor's device when available, else the reference;
            'ref' = pure PyTorch.
    Returns:
        Tensor of the shape and dtype of `x`.
    """
    _check_args(x, b, dim, act, impl)
    spec, alpha, gain, clamp = _resolve_params(act, alpha, gain, clamp)
    if impl == 'cuda':
        plugin = _plugin()
        if custom_ops.handles(plugin, x, b):
            return _BiasActCompiled.apply(x, b, plugin.ops, dim, spec, alpha, gain, clamp)
    return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)


def _plugin():
    return custom_ops.get_plugin('bias_act_plugin', os.path.dirname(__file__), cpp_sources=['bias_act.cpp'],
                                 cuda_sources=['bias_act.cu'], headers=['bias_act.h'])


def _bias_act_ref(x: torch.Tensor, b: Optional[torch.Tensor], dim: int, spec: EasyDict, alpha: float,
                  gain: float, clamp: float) -> torch.Tensor:
    """Pure-PyTorch bias_act (differentiable to any order through torch's autograd)."""
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha=alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _sum_to_bias(dx: torch.Tensor, dim: int) -> torch.Tensor:
    """Gradient of the bias: dx summed over every dimension but `dim`."""
    dims = [i for i in range(dx.ndim) if i != dim]
    return dx.sum(dims) if dims else dx  # sum([]) would reduce everything.


class _BiasActCompiled(torch.autograd.Function):
    """Compiled bias_act; its backward is _BiasActCompiledGrad, itself differentiable once more."""

    @staticmethod
    def forward(ctx, x, b, ops, dim, spec, alpha, gain, clamp):
        y = ops.forward(x, b, dim, spec.cuda_idx, alpha, gain, clamp)
        clamped_y = y if clamp >= 0 else None  # Tells the backward where the clamp was active.
        if spec.ref == '' and clamp < 0:
            # linear: act' = 1, nothing to keep (as EG3D); keeping y would forbid in-place use of the
            # output, e.g. the discriminator's resnet `y.add_(x)`.
            ctx.save_for_backward(None, None, None)
        elif not spec.has_2nd_grad and gain > 0:
            # linear/relu/lrelu: act'(x + b) depends only on the sign of x + b, which y shares, so the
            # backward evaluates it at y (with no bias) and x need not be kept alive, as in EG3D.
            ctx.save_for_backward(y, None, clamped_y)
        else:
            ctx.save_for_backward(x, b, clamped_y)
        ctx.args = (ops, dim, spec, alpha, gain, clamp)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b, y = ctx.saved_tensors  # x + b is where act' is evaluated (see forward).
        x = dy if x is None else x  # linear: the kernel reads x, but act' = 1 whatever its value
        dx = _BiasActCompiledGrad.apply(dy, x, b, y, *ctx.args)
        db = _sum_to_bias(dx, ctx.args[1]) if ctx.needs_input_grad[1] else None
        return dx, db, None, None, None, None, None, None


class _BiasActCompiledGrad(torch.autograd.Function):
    """dx = dy * gain * act'(x + b) (zero where clamped), with its own derivatives."""

    @staticmethod
    def forward(ctx, dy, x, b, y, ops, dim, spec, alpha, gain, clamp):
        ctx.save_for_backward(dy, x, b, y)
        ctx.args = (ops, dim, spec, alpha, gain, clamp)
        return ops.backward(dy, x, b, y, dim, spec.cuda_idx, alpha, gain, clamp, 1)

    @staticmethod
    def backward(ctx, d_dx):
        dy, x, b, y = ctx.saved_tensors
        ops, dim, spec, alpha, gain, clamp = ctx.args
        # dx is linear in dy, so its dy-derivative is this same function applied to d_dx.
        d_dy = _BiasActCompiledGrad.apply(d_dx, x, b, y, *ctx.args) if ctx.needs_input_grad[0] else None
        d_x = d_b = None  # Piecewise-linear activations: the second derivative is zero almost everywhere.
        if spec.has_2nd_grad and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = ops.backward(d_dx * dy, x, b, y, dim, spec.cuda_idx, alpha, gain, clamp, 2)
            d_b = _sum_to_bias(d_x, dim) if ctx.needs_input_grad[2] else None
        return d_dy, d_x, d_b, None, None, None, None, None, None, None


def bias_act_inplace_(x: torch.Tensor, b: torch.Tensor, act: str, gain: float, clamp: Optional[float]) -> torch.Tensor:
    """`bias_act(x, b, act=act, gain=gain, clamp=clamp)` for x [N, C, H, W] written into x itself, in the same
    order of operations (for 'linear' and 'lrelu'). For inference: no autograd, and x must be the caller's to
    overwrite. Saves an activation-sized allocation per layer, which sets the CPU's peak memory at 512x512.
    On the CPU the compiled kernel does it in one pass over x, NCHW or channels-last."""
    if act not in ('linear', 'lrelu'):
        raise ValueError(f"bias_act_inplace_: act must be 'linear' or 'lrelu', got {act!r}")
    b = b.to(x.dtype)
    plugin = _plugin()
    dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
    if dense and x.device.type == 'cpu' and custom_ops.handles(plugin, x, b):
        spec, alpha, gain, clamp = _resolve_params(act, None, gain, clamp)
        plugin.ops.forward_inplace(x, b, 1, spec.cuda_idx, alpha, gain, clamp)
        return x
    x.add_(b.reshape(1, -1, 1, 1))
    if act == 'lrelu':
        torch.nn.functional.leaky_relu_(x, activation_funcs['lrelu'].def_alpha)
    if gain != 1:
        x.mul_(gain)
    if clamp is not None:
        x.clamp_(-clamp, clamp)
    return x
