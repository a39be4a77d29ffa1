"""PStyle-3D training losses: stylised render vs frozen source render and style exemplar.

One step of style adaptation (docs/method.md) sees a *content* sample (w+ latent `ws`, camera
`c`) and a *style* sample (exemplar image with its own camera). The generator phase renders
`G.synthesis(ws, c, domain=exemplar)` and compares it with the frozen source render
`G_src.synthesis(ws, c)` (content, identity) and with the exemplar (AdaIN style statistics), plus
EG3D's pose-conditioned dual-discrimination adversarial loss and density regularisation. The
discriminator phase is EG3D's non-saturating loss with R1 on both `image` and `image_raw`.

Images are (N, 3, H, W) floats in [-1, 1]; cameras are (N, 25) EG3D labels.
"""

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from camera_utils import CAMERA_LABEL_DIM
from torch_utils import misc
from training.dual_discriminator import filtered_resizing

# VGG-19 layers whose channel mean/std make up the AdaIN style statistics (Huang & Belongie 2017).
STYLE_LAYERS = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1')
CONTENT_LAYER = 'relu4_1'
PHASES = ('Gmain', 'Greg', 'Gboth', 'Dmain', 'Dreg', 'Dboth')


def channel_stats(feat: torch.Tensor, eps: float = 1e-5) -> tuple:
    """Per-channel mean and std over space of a (N, C, H, W) feature map -> two (N, C) tensors."""
    misc.assert_shape(feat, [None, None, None, None], 'feature map')
    mean = feat.mean(dim=[2, 3])
    std = (feat.var(dim=[2, 3], unbiased=False) + eps).sqrt()
    return mean, std


def adain_style_loss(feats: Dict[str, torch.Tensor], target_feats: Dict[str, torch.Tensor],
                     layers: Sequence[str] = STYLE_LAYERS) -> torch.Tensor:
    """Sum over `layers` of MSE(mean) + MSE(std) of the channel statistics: scalar."""
    total = 0
    for name in layers:
        mean, std = channel_stats(feats[name])
        target_mean, target_std = channel_stats(target_feats[name])
        total = total + F.mse_loss(mean, target_mean) + F.mse_loss(std, target_std)
    return total


def identity_loss(emb: torch.Tensor, target_emb: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 1 - cosine similarity between (N, D) face embeddings: scalar."""
    if emb.shape != target_emb.shape or emb.ndim != 2:
        raise ValueError(f'identity embeddings must both be (N, D), got {tuple(emb.shape)} and '
                         f'{tuple(target_emb.shape)}')
    return (1 - F.cosine_similarity(emb, target_emb, dim=1)).mean()


def r1_penalty_dual(logits: torch.Tensor, image: torch.Tensor, image_raw: torch.Tensor) -> torch.Tensor:
    """EG3D's dual-discrimination R1: |dD/d image|^2 + |dD/d image_raw|^2 per sample -> (N,)."""
    grad_image, grad_raw = torch.autograd.grad(outputs=[logits.sum()], inputs=[image, image_raw],
                                               create_graph=True, only_inputs=True)
    return grad_image.square().sum([1, 2, 3]) + grad_raw.square().sum([1, 2, 3])


class PStyleLoss:
    """Losses of one PStyle-3D (or naive fine-tuning) step, applied phase by phase like EG3D's
    `StyleGAN2Loss.accumulate_gradients`.

    Args:
        G: the generator being trained; `G.synthesis(ws, c, domain=..., neural_rendering_resolution=...)`.
        D: EG3D's DualDiscriminator, `D({'image', 'image_raw'}, c) -> (N, 1)` logits.
        G_src: the frozen source generator (no gradients ever flow into it).
        vgg: (N, 3, H, W) in [-1, 1] -> dict of VGG-19 feature maps containing STYLE_LAYERS.
        arcface: (N, 3, H, W) in [-1, 1] -> (N, 512) identity embeddings; may be None when id_weight is 0.
        use_domain: True for PStyle-3D (the exemplar drives G's domain path); False for the
            naive fine-tuning baseline, which renders plain `G.synthesis(ws, c)`.
        density_reg: weight of EG3D's density smoothness (L1 between densities at random points
            and at points moved by `density_reg_p_dist`); 0 disables it.
        geom_weight: weight of the optional geometry preservation (L1 between G's and G_src's
            densities at the same random points); 0 disables it.
        r1_gamma: R1 weight (EG3D's gamma); the penalty is scaled by gamma / 2.
        perceptual_resolution: resize images to this size before VGG-19 (None = as rendered); a
            cost knob for small machines, the style statistics are per channel and size-agnostic.
    """

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, G_src: torch.nn.Module,
                 vgg: Callable[[torch.Tensor], Dict[str, torch.Tensor]],
                 arcface: Optional[Callable[[torch.Tensor], torch.Tensor]], use_domain: bool = True,
                 adv_weight: float = 0.7, content_weight: float = 1.0, style_weight: float = 1.0,
                 id_weight: float = 0.5, density_reg: float = 0.1, density_reg_p_dist: Optional[float] = None,
                 density_reg_points: int = 1000, geom_weight: float = 0.0, r1_gamma: float = 5.0,
                 neural_rendering_resolution: Optional[int] = None, perceptual_resolution: Optional[int] = None):
        for name, value in dict(adv_weight=adv_weight, content_weight=content_weight, style_weight=style_weight,
                                id_weight=id_weight, density_reg=density_reg, geom_weight=geom_weight,
                                r1_gamma=r1_gamma).items():
            if value < 0:
                raise ValueError(f'loss weight {name} must be >= 0, got {value}')
        if arcface is None and id_weight > 0:
            raise ValueError(f'id_weight={id_weight} needs an identity network (arcface), got None')
        self.G, self.D, self.G_src = G, D, G_src
        self.vgg, self.arcface = vgg, arcface
        self.use_domain = use_domain
        self.adv_weight, self.content_weight, self.style_weight = adv_weight, content_weight, style_weight
        self.id_weight, self.density_reg = id_weight, density_reg
        self.geom_weight, self.r1_gamma = geom_weight, r1_gamma
        self.density_reg_p_dist = (density_reg_p_dist if density_reg_p_dist is not None
                                   else G.rendering_kwargs.get('density_reg_p_dist', 0.004))
        self.density_reg_points = density_reg_points
        self.neural_rendering_resolution = neural_rendering_resolution or G.neural_rendering_resolution
        self.perceptual_resolution = perceptual_resolution

    def _domain(self, exemplar: torch.Tensor) -> dict:
        return dict(domain=exemplar) if self.use_domain else dict()

    def run_G(self, ws: torch.Tensor, c: torch.Tensor, exemplar: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Stylised render of content `ws` (N, num_ws, w_dim) at camera `c` in the exemplar's style."""
        return self.G.synthesis(ws, c, neural_rendering_resolution=self.neural_rendering_resolution,
                                **self._domain(exemplar))

    def run_vgg(self, image: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.perceptual_resolution is not None and image.shape[-1] != self.perceptual_resolution:
            image = filtered_resizing(image, self.perceptual_resolution)
        return self.vgg(image)

    def run_D(self, img: Dict[str, torch.Tensor], c: torch.Tensor) -> torch.Tensor:
        return self.D(img, c)

    def accumulate_gradients(self, phase: str, exemplar: torch.Tensor, exemplar_c: torch.Tensor,
                             content_ws: torch.Tensor, content_c: torch.Tensor, gain: float = 1.0,
                             fake: Optional[Dict[str, torch.Tensor]] = None) -> Tuple[dict, Optional[dict]]:
        """Backpropagate the losses of `phase` (scaled by `gain`, the lazy-regularisation interval).

        Args:
            exemplar: (N, 3, H, W) style exemplars in [-1, 1]; exemplar_c: (N, 25) their cameras.
            content_ws: (N, num_ws, w_dim) content latents; content_c: (N, 25) content cameras.
            fake: for D phases, the detached stylised render of the preceding G phase.
        Returns:
            (stats, renders): detached scalar losses for logging, and for Gmain/Gboth the detached
            renders {'fake': {'image', 'image_raw'}, 'content': (N, 3, H, W)} (else None).
        """
        if phase not in PHASES:
            raise ValueError(f'unknown phase "{phase}", expected one of {PHASES}')
        misc.assert_shape(exemplar, [None, self.G.img_channels, self.G.img_resolution, self.G.img_resolution],
                          'exemplar')
        misc.assert_shape(exemplar_c, [exemplar.shape[0], CAMERA_LABEL_DIM], 'exemplar camera c')
        misc.assert_shape(content_ws, [exemplar.shape[0], self.G.backbone.num_ws, self.G.w_dim], 'content ws')
        misc.assert_shape(content_c, [exemplar.shape[0], CAMERA_LABEL_DIM], 'content camera c')
        stats, renders = dict(), None
        if phase in ('Gmain', 'Gboth'):
            main_stats, renders = self._generator_main(exemplar, content_ws, content_c, gain)
            stats.update(main_stats)
        if phase in ('Greg', 'Gboth'):
            stats.update(self._generator_reg(exemplar, content_ws, gain))
        if phase in ('Dmain', 'Dreg', 'Dboth'):
            if fake is None and phase != 'Dreg':
                raise ValueError(f'phase {phase} needs the stylised render of the G phase (fake=...)')
            stats.update(self._discriminator(phase, exemplar, exemplar_c, content_c, fake, gain))
        return stats, renders

    def _generator_main(self, exemplar, ws, c, gain) -> Tuple[dict, dict]:
        # The source render runs on a forked RNG, so the stylised render below draws the same ray
        # samples: content and identity losses then see only what the adaptation changed.
        devices = [ws.device] if ws.device.type == 'cuda' else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            content = self.G_src.synthesis(ws, c, neural_rendering_resolution=self.neural_rendering_resolution)
        stylised = self.run_G(ws, c, exemplar)
        stats = dict()
        loss_adv = torch.zeros([], device=ws.device)
        if self.adv_weight > 0:
            logits = self.run_D(stylised, c)
            loss_adv = F.softplus(-logits).mean()
            stats.update({'Loss/G/adv': loss_adv.detach(), 'Loss/scores/fake': logits.detach().mean()})
        feats = self.run_vgg(stylised['image'])
        with torch.no_grad():
            content_feats = self.run_vgg(content['image'])
            exemplar_feats = self.run_vgg(exemplar)
        loss_content = F.mse_loss(feats[CONTENT_LAYER], content_feats[CONTENT_LAYER])
        loss_style = adain_style_loss(feats, exemplar_feats)
        loss_id = torch.zeros([], device=ws.device)
        if self.id_weight > 0:
            with torch.no_grad():
                content_emb = self.arcface(content['image'])
            loss_id = identity_loss(self.arcface(stylised['image']), content_emb)
        loss = (self.adv_weight * loss_adv + self.content_weight * loss_content
                + self.style_weight * loss_style + self.id_weight * loss_id)
        loss.mul(gain).backward()
        stats.update({'Loss/G/content': loss_content.detach(), 'Loss/G/style': loss_style.detach(),
                      'Loss/G/loss': loss.detach()})
        if self.id_weight > 0:
            stats['Loss/G/id'] = loss_id.detach()
        renders = {'fake': {'image': stylised['image'].detach(), 'image_raw': stylised['image_raw'].detach()},
                   'content': content['image']}
        return stats, renders

    def _generator_reg(self, exemplar, ws, gain) -> dict:
        """Density smoothness (EG3D's l1 'TV' regulariser) and optional geometry preservation."""
        if self.density_reg == 0 and self.geom_weight == 0:
            return dict()
        n = ws.shape[0]
        points = torch.rand([n, self.density_reg_points, 3], device=ws.device) * 2 - 1
        perturbed = points + torch.randn_like(points) * self.density_reg_p_dist
        coords = torch.cat([points, perturbed], dim=1)
        sigma = self.G.sample_mixed(coords, torch.randn_like(coords), ws, **self._domain(exemplar))['sigma']
        sigma_points, sigma_perturbed = sigma[:, :self.density_reg_points], sigma[:, self.density_reg_points:]
        loss_tv = F.l1_loss(sigma_points, sigma_perturbed)
        loss = self.density_reg * loss_tv
        stats = {'Loss/G/density_reg': loss_tv.detach()}
        if self.geom_weight > 0:
            with torch.no_grad():
                sigma_src = self.G_src.sample_mixed(points, torch.randn_like(points), ws)['sigma']
            loss_geom = F.l1_loss(sigma_points, sigma_src)
            loss = loss + self.geom_weight * loss_geom
            stats['Loss/G/geom'] = loss_geom.detach()
        # No gradient when only parts that do not shape the density train (--train=superresolution).
        if loss.requires_grad:
            loss.mul(gain).backward()
        return stats

    def _discriminator(self, phase, exemplar, exemplar_c, content_c, fake, gain) -> dict:
        stats = dict()
        loss_fake = 0
        if phase in ('Dmain', 'Dboth'):
            fake_logits = self.run_D(fake, content_c)
            loss_fake = F.softplus(fake_logits).mean()
            stats['Loss/scores/fake_D'] = fake_logits.detach().mean()
        need_r1 = phase in ('Dreg', 'Dboth') and self.r1_gamma > 0
        if phase == 'Dreg' and not need_r1:
            return stats
        real_image = exemplar.detach().requires_grad_(need_r1)
        real_raw = filtered_resizing(exemplar, self.neural_rendering_resolution).detach().requires_grad_(need_r1)
        real_logits = self.run_D({'image': real_image, 'image_raw': real_raw}, exemplar_c)
        stats['Loss/scores/real'] = real_logits.detach().mean()
        loss = loss_fake
        if phase in ('Dmain', 'Dboth'):
            loss_real = F.softplus(-real_logits).mean()
            loss = loss + loss_real
            stats['Loss/D/loss'] = (loss_fake + loss_real).detach()
        if need_r1:
            penalty = r1_penalty_dual(real_logits, real_image, real_raw)
            loss_r1 = (penalty * (self.r1_gamma / 2)).mean()
            loss = loss + loss_r1
            stats['Loss/D/r1'] = loss_r1.detach()
        loss.mul(gain).backward()
        return stats
