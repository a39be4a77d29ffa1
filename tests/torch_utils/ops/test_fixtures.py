"""Every op array in tests/fixtures/eg3d/ops.npz (outputs of NVlabs/eg3d) reproduced by both impls."""

import os

import numpy as np
import pytest
import torch

from torch_utils.ops import bias_act, conv2d_resample, upfirdn2d

FIXTURES = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'eg3d', 'ops.npz')
ACTS = ['linear', 'relu', 'lrelu', 'tanh', 'sigmoid', 'elu', 'selu', 'softplus', 'swish']
IMPLS = ['ref', 'cuda']


@pytest.fixture(scope='module')
def ref():
    with np.load(FIXTURES, allow_pickle=False) as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


def check(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual.detach().numpy(), expected.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('act', ACTS)
def test_bias_act(ref, act, impl):
    check(bias_act.bias_act(ref['bias_act_x'], ref['bias_act_b'], act=act, impl=impl), ref[f'bias_act_{act}'])


@pytest.mark.parametrize('impl', IMPLS)
def test_bias_act_gain_clamp(ref, impl):
    y = bias_act.bias_act(ref['bias_act_x'], ref['bias_act_b'], act='lrelu', gain=2, clamp=0.5, impl=impl)
    check(y, ref['bias_act_lrelu_gain2_clamp0.5'])


def test_setup_filter(ref):
    check(upfirdn2d.setup_filter([1, 3, 3, 1]), ref['filter_1331'])
    check(upfirdn2d.setup_filter([1, 2, 1]), ref['filter_121_nonsep'])
    # From 8 taps on, 1-D taps stay separable; shorter ones become their outer product.
    assert upfirdn2d.setup_filter(np.ones(8)).shape == (8,)
    assert upfirdn2d.setup_filter(np.ones(7)).shape == (7, 7)
    check(upfirdn2d.setup_filter(np.ones(8), gain=4), torch.full([8], 2 / 8))


@pytest.mark.parametrize('impl', IMPLS)
def test_upfirdn2d(ref, impl):
    x, f = ref['upfirdn2d_x'], ref['filter_1331']
    check(upfirdn2d.upsample2d(x, f, impl=impl), ref['upfirdn2d_up2'])
    check(upfirdn2d.downsample2d(x, f, impl=impl), ref['upfirdn2d_down2'])
    check(upfirdn2d.filter2d(x, f, padding=1, impl=impl), ref['upfirdn2d_filter_pad1'])
    y = upfirdn2d.upfirdn2d(x, ref['filter_121_nonsep'], up=3, down=2, padding=[2, 1, 0, 3], flip_filter=True,
                            gain=1.5, impl=impl)
    check(y, ref['upfirdn2d_custom'])


def test_conv2d_resample(ref):
    x, w, f = ref['upfirdn2d_x'], ref['conv_w'], ref['filter_1331']
    check(conv2d_resample.conv2d_resample(x, w, f=f, up=2, padding=1), ref['conv2d_resample_up2'])
    check(conv2d_resample.conv2d_resample(x, w, f=f, down=2, padding=1), ref['conv2d_resample_down2'])
    y = conv2d_resample.conv2d_resample(torch.cat([x, x], 1), ref['conv_w_groups'], padding=1, groups=2)
    check(y, ref['conv2d_resample_groups'])
