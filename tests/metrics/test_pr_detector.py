"""pr50k3_full end to end: VGG-16 fc7 features of a folder against a dataset (random-weight VGG-16)."""

import numpy as np
import pytest
import torch

from metrics import metric_main
from metrics.detectors import get_detector
from metrics.image_sources import ImageFolder, open_dataset
from metrics.metric_options import MetricOptions
from metrics.precision_recall import precision_recall
from tests.helpers_metrics import read_pngs


@pytest.fixture(scope='module')
def detector():
    """The random-weight VGG-16 detector, built once; calc_metric finds it in the detector cache."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return get_detector(MetricOptions(allow_random_weights=True), 'vgg16')


def test_detector_reads_uint8_at_224(detector):
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    features = detector(images)
    assert features.shape == (2, 4096) and bool((features >= 0).all())  # fc7 after its ReLU
    # The detector is VGGFeatures on the image enlarged to 224 and mapped to [-1, 1].
    enlarged = torch.nn.functional.interpolate(images.float(), size=(224, 224), mode='bilinear', align_corners=False)
    torch.testing.assert_close(features, detector.vgg(enlarged / 127.5 - 1)['fc7'])
    with pytest.raises(ValueError, match='uint8'):
        detector(images.float())


@pytest.mark.slow
def test_pr50k3_full_on_a_folder(heads, detector, cache_dir):
    folder = ImageFolder(heads['toon_dir'])
    result = metric_main.calc_metric('pr50k3_full', image_folder=folder, dataset_kwargs=dict(path=heads['natural']),
                                     allow_random_weights=True)
    assert result.num_images == dict(real=4, gen=4)
    dataset = open_dataset(MetricOptions(dataset_kwargs=dict(path=heads['natural'])))
    with torch.no_grad():
        gen = detector(torch.from_numpy(read_pngs(heads['toon_dir']))).numpy()
        real = detector(torch.from_numpy(np.stack([dataset[i][0] for i in range(len(dataset))]))).numpy()
    expected = precision_recall(real, gen, nhood_size=3)
    assert result.results == dict(pr50k3_full_precision=expected['precision'], pr50k3_full_recall=expected['recall'])
