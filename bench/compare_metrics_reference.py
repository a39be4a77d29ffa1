"""This project's Inception-v3, FID, KID and precision/recall side by side with torch-fidelity's.

torch-fidelity (a reference implementation of the TensorFlow FID protocol) is installed in a scratch
virtual environment, never as a project dependency:

    python -m venv /tmp/refvenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/refvenv/lib/python3.11/site-packages/main.pth
    /tmp/refvenv/bin/pip install --no-deps torch-fidelity==0.4.0 clean-fid==0.1.35

Both networks get the SAME weights: a random He-initialised Inception of this project (seed 0) is
saved as a state dict and loaded by torch-fidelity's `FeatureExtractorInceptionV3` (identical module
names). Published weights cannot be downloaded here; with them, pass --inception=FILE.
torch-fidelity imports torchvision for dataset and CLIP helpers that are not used here, and no
torchvision exists for this torch build: a stand-in module is registered when the real one is missing.

For each pair of image sets the table gives the largest difference of the 2048-d pool features
(relative to the largest feature), FID / KID / PR by both codes on the same features, and the FID of
this project's network with PyTorch's half-pixel resize instead of the graph's (what the resize
convention alone moves). KID subsets hold min(N, M) images, drawn from the same seeded NumPy
generator in the same order by all three codes.

Example:

    /tmp/refvenv/bin/python -m bench.compare_metrics_reference --count=8
"""

import io
import os
import sys
import tempfile
import types
import zipfile

import click
import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from dataset_preprocessing.synthetic_heads import make_synthetic_pair
from metrics import inception
from metrics.frechet_inception_distance import frechet_distance
from metrics.inception import InceptionV3
from metrics.kernel_inception_distance import kernel_distance
from metrics.precision_recall import precision_recall

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PORTRAITS = os.path.join(REPO_ROOT, 'tests', 'data', 'portraits')


def _stand_in_torchvision() -> None:
    """Register a stand-in `torchvision` (see `_StandIn`): this project never imports torchvision (it has
    no build for this torch), and the references import it only for helpers this script does not call."""
    for name in ('torchvision.datasets', 'torchvision.transforms.functional', 'torchvision.models.inception'):
        module = sys.modules.setdefault('torchvision', _StandIn('torchvision'))
        for part in name.split('.')[1:]:
            module = getattr(module, part)


class _StandIn(types.ModuleType):
    """A module whose every missing name is another stand-in module (lower case) or an empty class, enough
    for class definitions at import time; nothing of it is ever called here."""

    def __init__(self, name: str):
        super().__init__(name)
        self.__path__ = []  # a package: `from torchvision.datasets import ...` looks its submodules up

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        value = _StandIn(f'{self.__name__}.{name}') if name[:1].islower() else type(name, (torch.nn.Module,), {})
        if isinstance(value, _StandIn):
            sys.modules[value.__name__] = value
        setattr(self, name, value)
        return value


def _import_reference():
    """torch-fidelity's Inception, FID, KID and PR modules, and clean-fid's formulas when installed."""
    _stand_in_torchvision()  # the reference packages import torchvision at import time
    from torch_fidelity import feature_extractor_inceptionv3, metric_fid, metric_kid, metric_prc  # pylint: disable=import-outside-toplevel
    try:
        from cleanfid import fid as cleanfid  # pylint: disable=import-outside-toplevel
    except Exception:  # pylint: disable=broad-except  (not installed, or needs the real torchvision)
        cleanfid = None
    return types.SimpleNamespace(inception=feature_extractor_inceptionv3, fid=metric_fid, kid=metric_kid,
                                 prc=metric_prc, cleanfid=cleanfid)


def _zip_images(path: str) -> np.ndarray:
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith('.png'))
        return np.stack([np.asarray(PIL.Image.open(io.BytesIO(zf.read(n))).convert('RGB')) for n in names])


def _portraits(prefix: str) -> list:
    """The bundled portraits whose names start with `prefix` ('photos_', 'art_'), each (H, W, 3) uint8."""
    names = sorted(n for n in os.listdir(PORTRAITS) if n.startswith(prefix))
    return [np.asarray(PIL.Image.open(os.path.join(PORTRAITS, n)).convert('RGB')) for n in names]


def image_sets(count: int, workdir: str) -> list:
    """[(name, [uint8 (3, H, W)] * N, [uint8 (3, H', W')] * M)]: synthetic natural vs toon heads at 64 and
    256, real photos (1024 x 1024 and one 1536 x 1024) vs art portraits (1024), heads at 64 vs photos."""
    sets = {}
    for size in (64, 256):
        pair = make_synthetic_pair(os.path.join(workdir, str(size)), count=count, resolution=size)
        sets[size] = {style: _zip_images(path) for style, path in pair.items()}
    photos, art = _portraits('photos_'), _portraits('art_')
    chw = lambda images: [torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))) for x in images]
    return [('heads natural vs toon, 64 px', chw(sets[64]['natural']), chw(sets[64]['toon'])),
            ('heads natural vs toon, 256 px', chw(sets[256]['natural']), chw(sets[256]['toon'])),
            ('photos vs art portraits, 1024 px', chw(photos), chw(art)),
            ('heads 64 px vs photos 1024 px', chw(sets[64]['natural']), chw(photos))]


def _half_pixel_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)


@torch.no_grad()
def features(net: torch.nn.Module, images: list, resize=None) -> np.ndarray:
    """(N, 2048) float64 pool features, one image at a time (sizes may differ); `resize` replaces this
    project's resize (to measure what the convention alone changes)."""
    original = inception.resize_bilinear_tf1
    if resize is not None:
        inception.resize_bilinear_tf1 = resize
    try:
        return np.concatenate([net(image[None])[0].double().numpy() for image in images])
    finally:
        inception.resize_bilinear_tf1 = original


def mean_cov(features: np.ndarray, ddof: int) -> tuple:
    """Mean and covariance normalised by N - ddof (StyleGAN3 and this project: N; torch-fidelity: N - 1)."""
    return features.mean(axis=0), np.cov(features, rowvar=False, ddof=ddof)


def compare(ref, ours_net: InceptionV3, ref_net: torch.nn.Module, a: list, b: list) -> dict:
    """The numbers of one row of the table."""
    fa, fb = features(ours_net, a), features(ours_net, b)
    ra, rb = features(ref_net, a), features(ref_net, b)
    scale = max(np.abs(fa).max(), np.abs(fb).max())
    row = dict(feat_diff=max(np.abs(fa - ra).max(), np.abs(fb - rb).max()) / scale)
    # FID: ours (covariance / N) on our features; torch-fidelity's formula on the same statistics; its
    # own pipeline (covariance / (N - 1)) on its features.
    row['fid_ours'] = frechet_distance(*mean_cov(fa, 0), *mean_cov(fb, 0))
    stats = lambda f, ddof: dict(zip(('mu', 'sigma'), mean_cov(f, ddof)))
    row['fid_ref_same_stats'] = ref.fid.fid_statistics_to_metric(stats(fa, 0), stats(fb, 0), verbose=False)[
        ref.fid.KEY_METRIC_FID]
    row['fid_ref_pipeline'] = ref.fid.fid_statistics_to_metric(
        ref.fid.fid_features_to_statistics(torch.from_numpy(ra)),
        ref.fid.fid_features_to_statistics(torch.from_numpy(rb)), verbose=False)[ref.fid.KEY_METRIC_FID]
    if ref.cleanfid is not None:
        row['fid_cleanfid_same_stats'] = float(ref.cleanfid.frechet_distance(*mean_cov(fa, 0), *mean_cov(fb, 0)))
    ha = features(ours_net, a, resize=_half_pixel_resize)
    hb = features(ours_net, b, resize=_half_pixel_resize)
    row['fid_half_pixel'] = frechet_distance(*mean_cov(ha, 0), *mean_cov(hb, 0))
    # KID: every image in each subset (m = min(N, M) = the smaller set).
    m = min(len(fa), len(fb))
    row['kid_ours'] = kernel_distance(fb, fa, num_subsets=4, max_subset_size=m, seed=0)
    row['kid_ref'] = ref.kid.kid_features_to_metric(torch.from_numpy(ra), torch.from_numpy(rb), kid_subsets=4,
                                                    kid_subset_size=m, verbose=False, rng_seed=0)[
        ref.kid.KEY_METRIC_KID_MEAN]
    if ref.cleanfid is not None:
        np.random.seed(0)  # clean-fid draws its subsets from NumPy's global generator: the same draws as ours
        row['kid_cleanfid'] = float(ref.cleanfid.kernel_distance(fb, fa, num_subsets=4, max_subset_size=m))
    # PR (k = 3) on the Inception features of both (the VGG-16 detector needs torchvision's weights).
    if m > 3:
        ours_pr = precision_recall(fb.astype(np.float32), fa.astype(np.float32), nhood_size=3)
        ref_p, ref_r = ref.prc.calculate_precision_recall_full(torch.from_numpy(fa).float(),
                                                                torch.from_numpy(fb).float(), neighborhood=3)
        row.update(pr_ours=(ours_pr['precision'], ours_pr['recall']), pr_ref=(ref_p, ref_r))
    return row


@click.command(help=__doc__)
@click.option('--count', help='Synthetic heads per style', metavar='INT', type=click.IntRange(min=4), default=8,
              show_default=True)
@click.option('--inception', help='Inception-v3 state dict for both [default: random, seed 0]', metavar='FILE')
def main(count: int, inception: str):
    try:
        ref = _import_reference()
    except ImportError as err:
        raise click.ClickException(f'the reference code does not import ({err}); install torch-fidelity into a '
                                   f'scratch environment as this script\'s help shows, and run it from there')
    with tempfile.TemporaryDirectory() as workdir:
        if inception is None:
            torch.manual_seed(0)
            inception = os.path.join(workdir, 'inception-random.pth')
            torch.save(InceptionV3(allow_random_weights=True).state_dict(), inception)
        ours_net = InceptionV3(inception)
        ref_net = ref.inception.FeatureExtractorInceptionV3('inception-v3-compat', ['2048'],
                                                            feature_extractor_weights_path=inception)
        print('| image sets | N, M | features max-abs-diff / max | FID ours | FID torch-fidelity, same stats | '
              'FID clean-fid, same stats | FID torch-fidelity, its stats (cov / (N - 1)) | '
              'FID ours, half-pixel resize | KID ours | KID torch-fidelity | KID clean-fid | '
              'precision / recall ours | precision / recall torch-fidelity |')
        print('|' + ' --- |' * 13)
        for name, a, b in image_sets(count, workdir):
            row = compare(ref, ours_net, ref_net, a, b)
            cells = [name, f'{len(a)}, {len(b)}', f'{row["feat_diff"]:.1e}']
            cells += [f'{row[key]:.6g}' if key in row else 'n/a' for key in (
                'fid_ours', 'fid_ref_same_stats', 'fid_cleanfid_same_stats', 'fid_ref_pipeline', 'fid_half_pixel',
                'kid_ours', 'kid_ref', 'kid_cleanfid')]
            cells += ['{:.3f} / {:.3f}'.format(*row[key]) if key in row else 'n/a' for key in ('pr_ours', 'pr_ref')]
            print('| ' + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
    main()  # pylint: disable=no-value-for-parameter
