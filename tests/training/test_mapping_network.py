"""MappingNetwork against a direct evaluation of its formula."""

import numpy as np
import torch

from training.mapping_network import MappingNetwork


def test_mapping_network_arithmetic():
    torch.manual_seed(0)
    mapping = MappingNetwork(z_dim=8, c_dim=3, w_dim=6, num_ws=5, num_layers=2, lr_multiplier=0.5)
    z, c = torch.randn(4, 8), torch.randn(4, 3)
    # Reference: pixel-norm z and the embedded c, concatenate, two lrelu dense layers (gain sqrt 2).
    def dense(layer, x, act):
        y = x @ (layer.weight * layer.weight_gain).t() + layer.bias * layer.bias_gain
        return torch.nn.functional.leaky_relu(y, 0.2) * np.sqrt(2) if act else y
    norm = lambda v: v / v.square().mean(1, keepdim=True).add(1e-8).sqrt()
    x = torch.cat([norm(z), norm(dense(mapping.embed, c, False))], 1)
    w = dense(mapping.fc1, dense(mapping.fc0, x, True), True)
    ws = mapping(z, c)
    assert ws.shape == (4, 5, 6)
    np.testing.assert_allclose(ws.detach().numpy(), w[:, None].expand(4, 5, 6).detach().numpy(), atol=1e-5)
    # update_emas moves w_avg towards the batch mean by 1 - beta.
    mapping(z, c, update_emas=True)
    np.testing.assert_allclose(mapping.w_avg.numpy(), (w.mean(0) * (1 - 0.998)).detach().numpy(), atol=1e-6)
