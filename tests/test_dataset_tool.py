"""dataset_tool.py: EG3D-format zips from folders/zips, labels from files, mirroring, safety checks."""

import glob
import importlib.util
import json
import math
import os
import re
import shutil
import zipfile

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool
from camera_utils import xflip_camera_label
from dataset_preprocessing import synthetic_heads
from training.dataset import ImageFolderDataset

HAVE_MEDIAPIPE = importlib.util.find_spec('mediapipe') is not None
PORTRAITS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), 'data', 'portraits', '*.jpg')))


def _run(*args):
    return CliRunner().invoke(dataset_tool.convert_dataset, [str(a) for a in args], catch_exceptions=False)


def _striped_images(folder, n=3):
    """n 40x20 images: red | colour k | blue stripes, so a centre crop keeps only colour k."""
    os.makedirs(folder, exist_ok=True)
    for k in range(n):
        image = np.zeros((20, 40, 3), dtype=np.uint8)
        image[:, :10] = [255, 0, 0]
        image[:, 10:30] = [0, 50 * k, 100]
        image[:, 30:] = [0, 0, 255]
        PIL.Image.fromarray(image).save(os.path.join(folder, f'photo_{k}.png'))
    return folder


def _label(k):
    """A camera yawed by 0.2 (k + 1) rad about the y axis, 2.7 from the origin; principal point off-centre."""
    cos, sin = math.cos(0.2 * (k + 1)), math.sin(0.2 * (k + 1))
    return [cos, 0, sin, 2.7 * sin, 0, 1, 0, 0, -sin, 0, cos, 2.7 * cos, 0, 0, 0, 1,
            4.26, 0, 0.45, 0, 4.26, 0.5, 0, 0, 1]


def test_center_crop_and_resize_without_labels(tmp_path):
    source = _striped_images(tmp_path / 'src')
    result = _run('--source', source, '--dest', tmp_path / 'out.zip', '--transform', 'center-crop',
                  '--resolution', '16x16')
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / 'out.zip') as zf:
        assert sorted(zf.namelist()) == ['00000/img00000000.png', '00000/img00000001.png', '00000/img00000002.png',
                                         'dataset.json']
        assert json.loads(zf.read('dataset.json')) == {'labels': None}
    dataset = ImageFolderDataset(str(tmp_path / 'out.zip'), resolution=16)
    for k in range(3):
        assert np.all(dataset[k][0].transpose(1, 2, 0) == [0, 50 * k, 100])
    # Without a crop, non-square images are skipped with the reason, and then nothing is usable.
    result = CliRunner().invoke(dataset_tool.convert_dataset, ['--source', str(source), '--dest',
                                                               str(tmp_path / 'raw.zip')])
    assert result.exit_code != 0 and 'not square' in result.output and 'every image was skipped' in result.output


def test_csv_labels_and_mirror(tmp_path):
    source = tmp_path / 'src'
    os.makedirs(source / 'sub')
    for k in range(2):
        image = np.random.default_rng(k).integers(0, 255, size=(24, 24, 3), dtype=np.uint8)
        PIL.Image.fromarray(image).save(source / 'sub' / f'{k}.png')
    with open(tmp_path / 'cams.csv', 'w') as f:
        f.write('file,' + ','.join(f'c{i}' for i in range(25)) + '\n')
        for k in range(2):
            f.write(f'sub/{k}.png,' + ','.join(str(v) for v in _label(k)) + '\n')
    result = _run('--source', source, '--dest', tmp_path / 'out.zip', '--labels', tmp_path / 'cams.csv', '--mirror')
    assert result.exit_code == 0, result.output
    dataset = ImageFolderDataset(str(tmp_path / 'out.zip'), use_labels=True)
    assert len(dataset) == 4  # image 0, its mirror, image 1, its mirror (sorted names)
    original = np.asarray(PIL.Image.open(source / 'sub' / '1.png')).transpose(2, 0, 1)
    image, label = dataset[2]
    mirror_image, mirror_label = dataset[3]
    np.testing.assert_array_equal(image, original)
    np.testing.assert_array_equal(mirror_image, original[:, :, ::-1])
    np.testing.assert_allclose(label, _label(1), atol=1e-6)
    np.testing.assert_allclose(mirror_label, xflip_camera_label(np.float32(_label(1))), atol=1e-6)
    assert mirror_label[18] == pytest.approx(0.55)  # the principal point mirrors too


def test_reencode_eg3d_dataset_keeps_labels(tmp_path):
    heads = synthetic_heads.make_synthetic_dataset(str(tmp_path / 'heads.zip'), 'natural', 3, 32, seed=0)
    result = _run('--source', heads, '--dest', tmp_path / 'small', '--resolution', 16)
    assert result.exit_code == 0, result.output
    before = ImageFolderDataset(heads, use_labels=True)
    after = ImageFolderDataset(str(tmp_path / 'small'), use_labels=True)
    assert after.image_shape == [3, 16, 16] and len(after) == 3
    for k in range(3):
        np.testing.assert_array_equal(after.get_label(k), before.get_label(k))
        expected = np.asarray(PIL.Image.fromarray(before[k][0].transpose(1, 2, 0)).resize((16, 16), PIL.Image.LANCZOS))
        np.testing.assert_array_equal(after[k][0].transpose(1, 2, 0), expected)


def test_dry_run_and_overwrite(tmp_path):
    source = _striped_images(tmp_path / 'src', n=2)
    dest = tmp_path / 'out.zip'
    result = _run('--source', source, '--dest', dest, '--transform', 'center-crop', '--mirror', '--dry-run')
    assert result.exit_code == 0 and not dest.exists()
    assert '2 source images' in result.output and '4 images' in result.output
    assert _run('--source', source, '--dest', dest, '--transform', 'center-crop').exit_code == 0
    result = CliRunner().invoke(dataset_tool.convert_dataset, ['--source', str(source), '--dest', str(dest),
                                                               '--transform', 'center-crop', '--max-images', '1'])
    assert result.exit_code != 0 and 'already exists' in result.output and 'overwrite' in result.output
    assert len(ImageFolderDataset(str(dest))) == 2  # untouched
    assert _run('--source', source, '--dest', dest, '--transform', 'center-crop', '--max-images', 1,
                '--overwrite').exit_code == 0
    assert len(ImageFolderDataset(str(dest))) == 1


@pytest.mark.parametrize('content, message', [
    ({'labels': [['a.png', _label(0)]]}, r"1 image\(s\) have no label.*\['b.png'\]"),
    ({'labels': [['a.png', _label(0)], ['b.png', [0.0] * 16]]}, r'"b.png" must be 25 numbers'),
    ({'labels': [['a.png', _label(0)], ['b.png', [float('inf')] * 25]]}, r'"b.png" .*non-finite'),
    ({'labels': [['a.png', _label(0)], ['b.png', [0.0] * 25]]}, r'"b.png" is not a usable camera: its rotation'),
    ({'labels': [['a.png', _label(0)[:16] + [0.0] + _label(0)[17:]], ['b.png', _label(1)]]},
     r'"a.png" is not a usable camera: its focal length'),
    ({'labels': [['a.png', _label(0)[:3] + [0.0] + _label(0)[4:11] + [0.0] + _label(0)[12:]],
                 ['b.png', _label(1)]]}, r'"a.png" is not a usable camera: the camera sits inside the rendered volume'),
])
def test_label_file_errors(tmp_path, content, message):
    os.makedirs(tmp_path / 'src')
    for name in ('a.png', 'b.png'):
        PIL.Image.new('RGB', (8, 8)).save(tmp_path / 'src' / name)
    (tmp_path / 'labels.json').write_text(json.dumps(content))
    result = CliRunner().invoke(dataset_tool.convert_dataset, ['--source', str(tmp_path / 'src'), '--dest',
                                                               str(tmp_path / 'o.zip'), '--labels',
                                                               str(tmp_path / 'labels.json')])
    assert result.exit_code != 0
    assert re.search(message, result.output), result.output


def test_option_errors(tmp_path):
    source = _striped_images(tmp_path / 'src', n=1)
    (tmp_path / 'l.json').write_text(json.dumps({'photo_0.png': _label(0)}))
    invoke = lambda *a: CliRunner().invoke(dataset_tool.convert_dataset, [str(x) for x in a])
    result = invoke('--source', source, '--dest', tmp_path / 'o.zip', '--labels', tmp_path / 'l.json',
                    '--transform', 'center-crop')
    assert result.exit_code != 0 and 'invalidate the camera labels' in result.output
    result = invoke('--source', source, '--dest', tmp_path / 'o.zip', '--resolution', '32x16')
    assert result.exit_code != 0 and 'square size' in result.output
    result = invoke('--source', tmp_path / 'nothing', '--dest', tmp_path / 'o.zip')
    assert result.exit_code != 0 and 'folder or a .zip' in result.output


@pytest.mark.skipif(HAVE_MEDIAPIPE, reason='checks the message shown when the face tools are missing')
def test_estimate_cameras_without_face_tools(tmp_path):
    source = _striped_images(tmp_path / 'src', n=1)
    result = CliRunner().invoke(dataset_tool.convert_dataset, ['--source', str(source), '--dest',
                                                               str(tmp_path / 'o.zip'), '--estimate-cameras'])
    assert result.exit_code != 0 and 'pip install -r requirements-faces.txt' in result.output
    assert not (tmp_path / 'o.zip').exists()


@pytest.mark.skipif(not HAVE_MEDIAPIPE,
                    reason='optional face tools not installed: pip install -r requirements-faces.txt')
def test_estimate_cameras_on_portraits(tmp_path):
    source = tmp_path / 'src'
    os.makedirs(source)
    for path in PORTRAITS[5:7]:
        shutil.copy(path, source)
    PIL.Image.new('RGB', (300, 300), (128, 128, 128)).save(source / 'zz_blank.png')
    result = _run('--source', source, '--dest', tmp_path / 'faces.zip', '--estimate-cameras', '--resolution', 64,
                  '--mirror')
    assert result.exit_code == 0, result.output
    assert 'skipped zz_blank.png: no face found' in result.output and 'skipped 1' in result.output
    dataset = ImageFolderDataset(str(tmp_path / 'faces.zip'), use_labels=True)
    assert len(dataset) == 4 and dataset.image_shape == [3, 64, 64]
    for k in (0, 2):
        label, mirror_label = dataset.get_label(k), dataset.get_label(k + 1)
        np.testing.assert_allclose(np.linalg.norm(label[:16].reshape(4, 4)[:3, 3]), 2.7, atol=1e-5)
        np.testing.assert_allclose(mirror_label, xflip_camera_label(label), atol=1e-6)
