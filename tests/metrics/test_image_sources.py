"""The image-folder source (calc_metrics.py --images): every image read, anything else refused."""

import os

import numpy as np
import PIL.Image
import pytest
import torch

from metrics.image_sources import ImageFolder
from metrics.metric_options import MetricOptions
from tests.helpers_metrics import read_pngs


def test_image_folder_reads_every_image(heads):
    folder = ImageFolder(heads['toon_dir'])
    assert len(folder) == 4 and folder.size == (32, 32)
    opts = MetricOptions(batch_size=3)
    batches = list(folder.images(opts, range(4)))
    assert [b.shape[0] for b in batches] == [3, 1] and batches[0].dtype == torch.uint8
    np.testing.assert_array_equal(torch.cat(batches).numpy(), read_pngs(heads['toon_dir']))


def test_image_folder_refuses_non_images_and_mixed_sizes(tmp_path):
    PIL.Image.new('RGB', (16, 16)).save(tmp_path / 'a.png')
    (tmp_path / 'notes.txt').write_text('not an image')
    with pytest.raises(ValueError, match='not images: notes.txt'):
        ImageFolder(str(tmp_path))
    os.remove(tmp_path / 'notes.txt')
    (tmp_path / '.DS_Store').write_bytes(b'hidden files are left out')
    assert ImageFolder(str(tmp_path)).files == ['a.png']
    PIL.Image.new('RGB', (8, 8)).save(tmp_path / 'b.png')
    with pytest.raises(ValueError, match='mixes image sizes: "a.png" is 16x16, "b.png" is 8x8'):
        ImageFolder(str(tmp_path))
    (tmp_path / 'b.png').write_bytes(b'garbage')
    with pytest.raises(ValueError, match='cannot read .*b.png'):
        ImageFolder(str(tmp_path))

