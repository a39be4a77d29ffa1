"""Discriminator building blocks: minibatch standard deviation against its formula, architectures, Freeze-D."""

import numpy as np
import pytest
import torch

from training import discriminator_blocks as nets


def test_minibatch_std_layer():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 3, 3)
    out = nets.MinibatchStdLayer(group_size=2, num_channels=2)(x)
    assert out.shape == (4, 8, 3, 3)
    np.testing.assert_array_equal(out[:, :6].numpy(), x.numpy())
    # Sample n is grouped with sample n + N/G; each of the 2 extra maps is the mean std of 3 channels.
    groups = x.reshape(2, 2, 2, 3, 3, 3)  # [G, n, F, c, H, W]
    std = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[2, 3, 4])  # [n, F]
    np.testing.assert_allclose(out[:2, 6:, 0, 0].numpy(), std.numpy(), rtol=1e-5)
    np.testing.assert_allclose(out[2:, 6:, 1, 2].numpy(), std.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match='multiple of the minibatch-std group size'):
        nets.MinibatchStdLayer(group_size=4)(torch.randn(6, 2, 3, 3))


@pytest.mark.parametrize('architecture', ['skip', 'orig', 'resnet'])
def test_discriminator_configurations(architecture):
    torch.manual_seed(0)
    D = nets.Discriminator(c_dim=0, img_resolution=16, img_channels=3, architecture=architecture, channel_base=64,
                           channel_max=16, block_kwargs={'freeze_layers': 2}, epilogue_kwargs={'mbstd_group_size': 2})
    assert D.b16.fromrgb.weight.shape == (4, 3, 1, 1)
    # Freeze-D: the first two layers keep their weights as buffers, later layers are trainable.
    params = dict(D.named_parameters())
    assert 'b16.fromrgb.weight' not in params and 'b16.conv0.weight' not in params
    assert 'b16.conv1.weight' in params and 'b16.conv0.weight' in D.state_dict()
    img = torch.randn(4, 3, 16, 16)
    logits = D(img, None)
    assert logits.shape == (4, 1) and torch.isfinite(logits).all()
    # Without conditioning the logits do not depend on which other samples share the batch order
    # beyond the minibatch-std groups: swapping whole groups permutes the outputs.
    swapped = D(img[[1, 0, 3, 2]], None)
    np.testing.assert_allclose(swapped.detach().numpy(), logits[[1, 0, 3, 2]].detach().numpy(), rtol=1e-5, atol=1e-6)
