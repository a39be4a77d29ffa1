"""Project real photos into a network: W / W+ projection, pivotal tuning and stylised renders."""

import copy
import functools
import os
from typing import Any, Dict, List, Optional, Tuple

import click
import numpy as np
import torch
from tqdm import tqdm

import gen_utils
import legacy
from dataset_preprocessing.face_landmarks import FaceMeshDetector, FaceToolsMissing
from dnnlib import cli
from dnnlib.image_io import list_images
from inversion import alignment, outputs
from inversion.losses import ReconstructionLoss, psnr
from inversion.pivotal_tuning import TuningSchedule, pivotal_tune
from inversion.projection import LATENT_SPACES, ProjectionSchedule, StepReport, project, seeded_render
from torch_utils.safe_pickle import atomic_write_pickle
from training import inference
from training.perceptual import LPIPS, IdentityEncoder

# ----------------------------------------------------------------------------


def list_targets(target: str) -> List[str]:
    """The photo, or the photos of a folder (sorted, not its subfolders), to project."""
    if os.path.isfile(target):
        return [target]
    if not os.path.isdir(target):
        raise click.BadParameter(f'"{target}" is neither an image file nor a folder', param_hint="'--target'")
    files = [os.path.join(target, name) for name in list_images(target, recursive=False)]
    if not files:
        raise click.BadParameter(f'folder "{target}" holds no image files (.png, .jpg, ...); give a photo or a '
                                 f'folder of photos', param_hint="'--target'")
    return files


def check_generator(G: torch.nn.Module, path: str) -> None:
    """A tri-plane generator with camera-conditioned mapping, as projection needs."""
    if not all(hasattr(G, name) for name in ('mapping', 'synthesis', 'backbone', 'rendering_kwargs')) \
            or getattr(G, 'c_dim', None) != 25:
        raise click.ClickException(f'network "{path}" has no tri-plane generator G_ema with 25-number camera labels '
                                   f'(EG3D / PStyle-3D networks have one); projection needs it')


def build_lpips(vgg16: Optional[str], lpips_weights: Optional[str], random_perceptual: bool,
                device: torch.device) -> torch.nn.Module:
    """LPIPS on VGG-16 from the given weights, or random stand-ins with --random-perceptual."""
    if random_perceptual and (vgg16 or lpips_weights):
        raise click.UsageError('--random-perceptual replaces --vgg16 and --lpips; give one or the other')
    if not random_perceptual and not (vgg16 and lpips_weights):
        raise click.UsageError('projection needs LPIPS weights: --vgg16=vgg16-397923af.pth (torchvision) and '
                               '--lpips=vgg.pth (LPIPS v0.1), as paths or URLs; or --random-perceptual for random '
                               'stand-ins (tests, CPU demos; the perceptual term is then meaningless)')
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random stand-ins are the same in every run
            return LPIPS(vgg_weights=vgg16, lin_weights=lpips_weights,
                         allow_random_weights=random_perceptual).to(device)
    except (FileNotFoundError, ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err


def build_identity(arcface: Optional[str], device: torch.device) -> Optional[torch.nn.Module]:
    if arcface is None:
        return None
    try:
        return IdentityEncoder(weights=arcface).to(device)
    except (FileNotFoundError, ValueError, OSError, RuntimeError) as err:
        raise click.ClickException(str(err)) from err


@functools.lru_cache(maxsize=1)
def face_detector() -> FaceMeshDetector:
    """The MediaPipe face detector, built on first use; a clear error when the face tools are not installed."""
    try:
        return FaceMeshDetector()
    except FaceToolsMissing as err:
        raise click.ClickException(f'{err}; or pass --no-align --camera=FILE for an EG3D-cropped image') from err


def stage_metrics(G: torch.nn.Module, ws: torch.Tensor, c: torch.Tensor, target: torch.Tensor,
                  lpips: Optional[torch.nn.Module], identity: Optional[torch.nn.Module]) -> Tuple[Dict, torch.Tensor]:
    """PSNR (and LPIPS / identity similarity when real weights are given) of the render of ws, and the render."""
    image = seeded_render(G, ws, c)
    metrics: Dict[str, float] = {'psnr': round(float(psnr(image, target)[0]), 3)}
    with torch.no_grad():
        if lpips is not None:
            metrics['lpips'] = round(float(lpips(image, target)[0]), 4)
        if identity is not None:
            metrics['identity_similarity'] = round(float((identity(image) * identity(target)).sum()), 4)
    return metrics, image


def stylised_grid(G: torch.nn.Module, ws: torch.Tensor, cameras: List[torch.Tensor], domain: Any,
                  alphas: List[float]) -> np.ndarray:
    """Rows: alphas; columns: cameras (the target's view first)."""
    code = G.get_domain_code(domain, 1, source_ws=ws)
    tiles = [inference.image_to_uint8(seeded_render(G, ws, c, domain=code, alpha=alpha))[0]
             for alpha in alphas for c in cameras]
    return gen_utils.layout_grid(np.stack(tiles), rows=len(alphas), cols=len(cameras))


class StepLog:
    """Progress bar postfix and optional video frames for each optimisation step."""

    def __init__(self, bar: tqdm, video: Optional[outputs.VideoRecorder]):
        self.bar, self.video = bar, video

    def __call__(self, report: StepReport) -> None:
        self.bar.set_postfix(loss=f'{report.loss:.4f}', psnr=f'{report.psnr:.2f}')
        self.bar.update(1)
        if self.video is not None:
            self.video.add(report.image)


# ----------------------------------------------------------------------------


@click.command()
@click.option('--network', help='Network pickle (path or URL)  [default: the bundled demo network]', metavar='PATH',
              callback=cli.expand_path)
@click.option('--target', 'target_path', help='Photo to project, or a folder of photos', required=True, metavar='PATH',
              callback=cli.expand_path)
@click.option('--outdir', help='Where to save the outputs (one folder per photo)', required=True, metavar='DIR',
              callback=cli.expand_path)
@click.option('--camera', 'camera_path', metavar='FILE', callback=cli.expand_path,
              help='Camera label: 25 numbers as .npy / .json, or a dataset.json with the photo\'s entry  '
                   '[default: estimated from the face]')
@click.option('--align/--no-align', default=True, show_default=True,
              help='Detect the face, crop it as EG3D\'s data and estimate its camera (needs the face tools); '
                   '--no-align takes an EG3D crop with --camera')
@click.option('--latent-space', type=click.Choice(LATENT_SPACES), default='w_plus', show_default=True,
              help='Optimise one w (w) or one per layer (w_plus)')
@click.option('--num-steps', type=click.IntRange(min=1), default=500, show_default=True,
              help='Projection steps')
@click.option('--pti-steps', type=click.IntRange(min=0), default=350, show_default=True,
              help='Pivotal tuning steps (0 = none)')
@click.option('--lr', type=cli.FiniteFloat(min=0, min_open=True), default=0.01, show_default=True,
              help='Projection learning rate')
@click.option('--pti-lr', type=cli.FiniteFloat(min=0, min_open=True), default=3e-4, show_default=True,
              help='Pivotal tuning learning rate')
@click.option('--symmetry-weight', type=cli.FiniteFloat(min=0), default=ProjectionSchedule.symmetry_weight,
              show_default=True,
              help='Face-symmetry prior of the projection: weight of the mirrored photo seen from the mirrored '
                   'camera (constrains the side the photo does not show; a second generator pass per step; '
                   '0 = off, e.g. for strongly asymmetric faces or lighting)')
@click.option('--seed', type=click.IntRange(min=0), default=0, show_default=True,
              help='Seed of the latent noise and the renderer\'s sampling')
@click.option('--vgg16', help='VGG-16 weights for LPIPS (vgg16-397923af.pth)', metavar='[PATH|URL]',
              callback=cli.expand_path)
@click.option('--lpips', 'lpips_weights', help='LPIPS v0.1 linear layers (vgg.pth)', metavar='[PATH|URL]',
              callback=cli.expand_path)
@click.option('--arcface', help='ArcFace IR-SE-50 weights (model_ir_se50.pth): adds identity similarity to '
              'metrics.json', metavar='[PATH|URL]', callback=cli.expand_path)
@click.option('--random-perceptual', is_flag=True, help='Random-weight LPIPS stand-ins (tests, CPU demos)')
@click.option('--domain', help='Style domain stored in the network  [default: its first one]', metavar='NAME')
@click.option('--exemplar', help='Style exemplar image for the stylised grid', metavar='IMAGE',
              callback=cli.expand_path)
@click.option('--alpha', 'alphas', type=gen_utils.FloatList(), default='0,0.5,1', show_default=True, metavar='LIST',
              help='Style strengths of the stylised grid\'s rows')
@click.option('--views', type=gen_utils.ViewList(), default='multi', show_default=True, metavar='VIEWS',
              help='Further columns of the stylised grid: yaw:pitch list in radians or a preset: '
                   f'{", ".join(gen_utils.VIEW_PRESETS)}')
@click.option('--save-video', is_flag=True, help='Also save the optimisation as proj.mp4 (target | render)')
@click.option('--overwrite', is_flag=True, help='Replace existing output folders')
@click.option('--device', 'device_name', type=click.Choice(['auto', 'cpu', 'cuda']), default='auto',
              show_default=True, help='Where to run')
def run_projection(network: Optional[str], target_path: str, outdir: str, camera_path: Optional[str], align: bool,
                   latent_space: str, num_steps: int, pti_steps: int, lr: float, pti_lr: float,
                   symmetry_weight: float, seed: int,
                   vgg16: Optional[str], lpips_weights: Optional[str], arcface: Optional[str],
                   random_perceptual: bool, domain: Optional[str], exemplar: Optional[str], alphas: List[float],
                   views: List[Tuple[float, float]], save_video: bool, overwrite: bool, device_name: str):
    """Project photos into a network (W / W+), tune the network around them (PTI) and stylise them.

    For each photo, OUTDIR/<photo name>/ holds target.png (the aligned crop), camera.npy, latent.npy
    (1, num_ws, w_dim), proj.png, pti.png, network-pti.pkl (the tuned network, still with its
    domains), metrics.json and, when the network has a style domain, stylised_grid.png. A folder of
    photos also gets OUTDIR/latents/ for train.py --content.

    Examples:

    \b
    # A photo into the bundled demo network with random LPIPS stand-ins (a quick CPU check).
    python projector.py --target=me.jpg --outdir=out --random-perceptual --num-steps=100 --pti-steps=50

    \b
    # A trained style network with LPIPS weights; an orbit video of the result afterwards.
    python projector.py --network=pixar.pkl --target=me.jpg --outdir=out \\
        --vgg16=vgg16-397923af.pth --lpips=vgg.pth --save-video
    python gen_videos.py --network=out/me/network-pti.pkl --latent=out/me/latent.npy --outdir=out/me

    \b
    # An EG3D crop with a known camera, and a folder of photos for train.py --content.
    python projector.py --target=img00000000.png --camera=dataset.json --no-align --outdir=out \\
        --vgg16=vgg16-397923af.pth --lpips=vgg.pth
    python projector.py --target=photos/ --outdir=content --vgg16=vgg16-397923af.pth --lpips=vgg.pth
    """
    targets = list_targets(target_path)
    network_path = gen_utils.resolve_network_path(network)
    dests = [os.path.join(outdir, os.path.splitext(os.path.basename(t))[0]) for t in targets]
    if len(set(dests)) != len(dests):
        raise click.BadParameter('two photos share a file name stem; rename one', param_hint="'--target'")
    folder_target = os.path.isdir(target_path)
    outputs_written = dests + ([os.path.join(outdir, outputs.LATENTS_DIR)] if folder_target else [])
    sources = [target_path, camera_path, exemplar, network_path, vgg16, lpips_weights, arcface]
    cli.check_outputs(outputs_written, overwrite, sources=sources)
    for dest in outputs_written:  # a folder output is replaced whole: it must not hold an input either
        cli.check_not_a_source(dest, '--outdir', sources)
    cli.prepare_outdir(outdir)

    device = gen_utils.select_device(device_name)
    print(f'Loading networks from "{network_path}"...')
    data = legacy.load_network(network_path, '--network')
    G_source = data['G_ema'].eval().requires_grad_(False).to(device)
    check_generator(G_source, network_path)
    domain_arg, domain_label = (None, None)
    if getattr(G_source, 'domain_kwargs', None) is not None or domain or exemplar:
        domain_arg, domain_label = gen_utils.select_domain(G_source, domain, exemplar, device)
    lpips = build_lpips(vgg16, lpips_weights, random_perceptual, device)
    metric_lpips = None if random_perceptual else lpips
    identity = build_identity(arcface, device)
    loss_fn = ReconstructionLoss(lpips)
    resolution = G_source.img_resolution

    latents, cameras = {}, {}
    for idx, (path, dest) in enumerate(zip(targets, dests)):
        stem = os.path.basename(dest)
        print(f'Projecting "{path}" ({idx + 1}/{len(targets)})...')
        try:
            prepared = alignment.prepare_target(path, resolution, align, camera_path, face_detector)
        except alignment.TargetError as err:
            if len(targets) == 1:
                raise click.ClickException(str(err)) from err
            click.echo(f'skipped "{path}": {err}', err=True)
            continue
        for note in prepared.notes:
            print(f'  {note}')
        # Each photo tunes its own copy; the last one may tune the loaded network itself.
        G = G_source if idx == len(targets) - 1 else copy.deepcopy(G_source)
        c = torch.from_numpy(prepared.camera).unsqueeze(0).to(device)
        target = inference.image_to_tensor(prepared.image, device)  # (1, 3, R, R) in [-1, 1]
        with outputs.staged_directory(dest) as stage:
            video = outputs.VideoRecorder(os.path.join(stage, 'proj.mp4'), prepared.image) if save_video else None
            try:
                with tqdm(total=num_steps, desc='projection', unit='step') as bar:
                    projection = project(G, target, c, loss_fn, latent_space=latent_space, seed=seed,
                                         schedule=ProjectionSchedule(num_steps=num_steps, lr=lr,
                                                                     symmetry_weight=symmetry_weight),
                                         on_step=StepLog(bar, video))
                proj_metrics, proj_image = stage_metrics(G, projection.ws, c, target, metric_lpips, identity)
                tuning = None
                if pti_steps:
                    with tqdm(total=pti_steps, desc='pivotal tuning', unit='step') as bar:
                        tuning = pivotal_tune(G, projection.ws, target, c, lpips, seed=seed,
                                              schedule=TuningSchedule(num_steps=pti_steps, lr=pti_lr),
                                              on_step=StepLog(bar, video))
            finally:
                if video is not None:
                    video.close()
            pti_metrics, pti_image = stage_metrics(G, projection.ws, c, target, metric_lpips, identity)

            gen_utils.save_png(prepared.image, os.path.join(stage, 'target.png'))
            np.save(os.path.join(stage, 'camera.npy'), prepared.camera.astype(np.float32))
            np.save(os.path.join(stage, 'latent.npy'), projection.ws.cpu().numpy().astype(np.float32))
            gen_utils.save_png(inference.image_to_uint8(proj_image)[0], os.path.join(stage, 'proj.png'))
            gen_utils.save_png(inference.image_to_uint8(pti_image)[0], os.path.join(stage, 'pti.png'))
            G_out = copy.deepcopy(G).cpu()  # pickled networks live on the CPU, as in training snapshots
            atomic_write_pickle(dict(G=G_out, G_ema=G_out, D=data['D'], training_set_kwargs=data['training_set_kwargs'],
                                     augment_pipe=data['augment_pipe']), os.path.join(stage, 'network-pti.pkl'))
            del G_out
            if domain_arg is not None:
                grid_cams = [c] + [inference.generator_camera_label(G, yaw, pitch, device=device)
                                   for yaw, pitch in views]
                grid = stylised_grid(G, projection.ws, grid_cams, domain_arg, alphas)
                gen_utils.save_png(grid, os.path.join(stage, 'stylised_grid.png'))
            outputs.write_json({
                'target': os.path.abspath(path), 'network': network_path, 'latent_space': latent_space,
                'aligned': align, 'notes': prepared.notes, 'symmetry_weight': symmetry_weight,
                'projection': dict(proj_metrics, steps=num_steps, seconds=round(projection.seconds, 2)),
                'pivotal_tuning': dict(pti_metrics, steps=pti_steps,
                                       seconds=round(tuning.seconds, 2) if tuning else 0.0,
                                       tuned_parameters=tuning.num_parameters if tuning else 0),
                'style': domain_label, 'random_perceptual': random_perceptual,
            }, os.path.join(stage, 'metrics.json'))
        print(f'  PSNR {proj_metrics["psnr"]:.2f} dB after projection, {pti_metrics["psnr"]:.2f} dB after tuning; '
              f'wrote {dest}')
        latents[stem], cameras[stem] = projection.ws.cpu().numpy(), prepared.camera
    if not latents:
        raise click.ClickException('no photo could be projected (see the messages above)')
    if folder_target:
        with outputs.staged_directory(os.path.join(outdir, outputs.LATENTS_DIR)) as stage:
            names = outputs.write_latent_folder(stage, latents, cameras)
        print(f'Wrote {len(names)} latents to {os.path.join(outdir, outputs.LATENTS_DIR)} (train.py --content)')

# ----------------------------------------------------------------------------


if __name__ == '__main__':
    cli.run(run_projection)
