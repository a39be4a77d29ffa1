"""StyleGAN2's mapping network: latent z and conditioning label c -> intermediate latents w."""

from typing import Optional

import torch

from torch_utils import misc
from torch_utils import persistence
from training.layers import FullyConnectedLayer, normalize_2nd_moment


@persistence.persistent_class
class MappingNetwork(torch.nn.Module):
    """z (and the embedded conditioning label c) -> w, broadcast to `num_ws` copies, with truncation."""

    def __init__(self,
                 z_dim: int,                              # Latent z size, 0 = no latent.
                 c_dim: int,                              # Conditioning label size, 0 = no label.
                 w_dim: int,                              # Intermediate latent w size.
                 num_ws: Optional[int],                   # Copies of w to output, None = a single (N, w_dim).
                 num_layers: int = 8,                     # Dense layers.
                 embed_features: Optional[int] = None,    # Label embedding size, None = w_dim.
                 layer_features: Optional[int] = None,    # Hidden layer size, None = w_dim.
                 activation: str = 'lrelu',
                 lr_multiplier: float = 0.01,             # Learning-rate multiplier of the dense layers.
                 w_avg_beta: Optional[float] = 0.998):    # Decay of the tracked mean w, None = no tracking.
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f'fc{idx}', FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                                           lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer('w_avg', torch.zeros([w_dim]))

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor], truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False) -> torch.Tensor:
        """z (N, z_dim), c (N, c_dim) -> ws (N, num_ws, w_dim), or (N, w_dim) when num_ws is None.

        Truncation pulls w towards the tracked mean: w_avg + psi * (w - w_avg), for the first
        `truncation_cutoff` ws only when given.
        """
        x = None
        if self.z_dim > 0:
            misc.assert_shape(z, [None, self.z_dim], 'z')
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            misc.assert_shape(c, [None, self.c_dim], 'c')
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f'fc{idx}')(x)

        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError('truncation needs the tracked mean w, but this mapping network has w_avg_beta=None')
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f'z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws}'
