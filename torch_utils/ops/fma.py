"""Fused multiply-add `a * b + c` with broadcasting (EG3D's `fma`)."""

import torch


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """a * b + c in one kernel (torch.addcmul); the result has the broadcast shape of a, b and c."""
    return _FusedMultiplyAdd.apply(a, b, c)


class _FusedMultiplyAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, c):
        out = torch.addcmul(c, a, b)
        ctx.save_for_backward(a, b)
        ctx.c_shape = c.shape
        return out

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved_tensors
        da = db = dc = None
        # Written with differentiable torch ops, so this backward is itself differentiable.
        if ctx.needs_input_grad[0]:
            da = _unbroadcast(dout * b, a.shape)
        if ctx.needs_input_grad[1]:
            db = _unbroadcast(dout * a, b.shape)
        if ctx.needs_input_grad[2]:
            dc = _unbroadcast(dout, ctx.c_shape)
        return da, db, dc


def _unbroadcast(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum `x` over the dimensions that broadcasting expanded, back to `shape`."""
    extra_dims = x.ndim - len(shape)
    dims = [i for i in range(x.ndim) if i < extra_dims or (shape[i - extra_dims] == 1 and x.shape[i] > 1)]
    if dims:
        x = x.sum(dim=dims, keepdim=True)
    return x.reshape(shape)
