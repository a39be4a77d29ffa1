"""ImageFolderDataset: EG3D's format, max_size/xflip index mapping, mirrored cameras, clear errors."""

import json
import math
import os
import zipfile

import numpy as np
import PIL.Image
import pytest

import camera_utils
from camera_utils import xflip_camera_label
from dataset_preprocessing import synthetic_heads
from training.dataset import ImageFolderDataset

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'eg3d', 'cameras.npz')


def _label(distance: float) -> list:
    """A camera at (0, 0, distance) with the identity rotation (looking along +z), EG3D's intrinsics."""
    return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, distance, 0, 0, 0, 1, 4.26, 0, 0.5, 0, 4.26, 0.5, 0, 0, 1]


def _write_folder(root, n=3, size=8, labels=True, mode='RGB'):
    """n images img0000000k.png whose pixel values encode k, and dataset.json with distinct labels."""
    os.makedirs(root, exist_ok=True)
    entries = []
    for k in range(n):
        image = np.full((size, size, 3), 10 * k, dtype=np.uint8)
        image[0, 0] = 200  # marks the top-left corner, to see flips
        PIL.Image.fromarray(image).convert(mode).save(os.path.join(root, f'img{k:08d}.png'))
        entries.append([f'img{k:08d}.png', _label(distance=2 + k)])
    if labels:
        with open(os.path.join(root, 'dataset.json'), 'w') as f:
            json.dump({'labels': entries}, f)
    return str(root)


def _zip_folder(folder, dest):
    with zipfile.ZipFile(dest, 'w') as zf:
        for name in sorted(os.listdir(folder)):
            zf.write(os.path.join(folder, name), name)
    return str(dest)


def test_folder_and_zip_read_the_same(tmp_path):
    folder = _write_folder(tmp_path / 'd', n=3)
    for path in (folder, _zip_folder(folder, tmp_path / 'd.zip')):
        dataset = ImageFolderDataset(path, use_labels=True)
        assert dataset.name == 'd' and len(dataset) == 3
        assert dataset.image_shape == [3, 8, 8] and dataset.resolution == 8 and dataset.num_channels == 3
        assert dataset.label_shape == [25] and dataset.label_dim == 25 and dataset.has_labels
        image, label = dataset[2]
        assert image.dtype == np.uint8 and image.shape == (3, 8, 8)
        assert image[0, 1, 1] == 20 and image[0, 0, 0] == 200
        assert label.dtype == np.float32 and label[11] == 4 and label[16] == np.float32(4.26)
    assert not ImageFolderDataset(folder).has_labels  # use_labels=False: label_dim 0, as in EG3D


def test_max_size_and_xflip_index_mapping(tmp_path):
    folder = _write_folder(tmp_path / 'd', n=5)
    dataset = ImageFolderDataset(folder, use_labels=True, max_size=3, xflip=True, random_seed=7)
    # EG3D: a seeded shuffle, the first max_size kept in file order, then the mirrored copies.
    expected = np.arange(5)
    np.random.RandomState(7).shuffle(expected)
    expected = np.sort(expected[:3])
    assert len(dataset) == 6
    assert [dataset.get_details(i).raw_idx for i in range(6)] == list(expected) * 2
    assert [dataset.get_details(i).xflip for i in range(6)] == [False] * 3 + [True] * 3
    image, label = dataset[3]
    plain_image, plain_label = dataset[0]
    np.testing.assert_array_equal(image, plain_image[:, :, ::-1])
    np.testing.assert_array_equal(label, xflip_camera_label(plain_label))
    np.testing.assert_array_equal(dataset.get_details(3).raw_label, plain_label)  # stored, unmirrored


def test_xflip_label_matches_eg3d_cameras():
    cams = np.load(FIXTURES)
    labels = cams['c']
    mirrored = xflip_camera_label(labels)
    # The mirrored label is the camera with the opposite yaw (same pitch), as sampled by EG3D.
    for label, flipped, yaw, pitch in zip(labels, mirrored, cams['yaws'], cams['pitches']):
        cam2world = camera_utils.LookAtPoseSampler.sample(math.pi / 2 - yaw, math.pi / 2 + pitch, [0, 0, 0.2],
                                                          radius=2.7)
        np.testing.assert_allclose(flipped[:16], cam2world.reshape(16).numpy(), atol=1e-5)
        np.testing.assert_array_equal(flipped[16:], label[16:])  # centred principal point stays
    np.testing.assert_array_equal(xflip_camera_label(mirrored), labels)
    off_centre = labels[0].copy()
    off_centre[18] = 0.45
    assert xflip_camera_label(off_centre)[18] == np.float32(0.55)
    with pytest.raises(ValueError, match=r'\(\.\.\., 25\)'):
        xflip_camera_label(np.zeros(16))


def test_mirrored_label_renders_the_mirrored_image():
    """Rendering the mirrored head with the mirrored label gives the flipped image, pixel for pixel."""
    shape, yaw, pitch, choice = synthetic_heads.sample_head(seed=1, index=2)
    assert abs(shape.hair_part) > 0.01  # the head is not symmetric, so mirroring is visible
    label = camera_utils.camera_label(yaw, pitch)[0].numpy()
    colors = synthetic_heads.pick_colors('toon', choice)
    image, depth = synthetic_heads.render_head(shape, label, 32, 'toon', colors)
    m_image, m_depth = synthetic_heads.render_head(shape.mirrored(), xflip_camera_label(label), 32, 'toon', colors)
    unmirrored, _ = synthetic_heads.render_head(shape, xflip_camera_label(label), 32, 'toon', colors)
    assert np.abs(unmirrored.astype(int) - image[:, ::-1].astype(int)).mean() > 2  # the test can fail
    np.testing.assert_allclose(m_depth, depth[:, ::-1], atol=1e-4)
    assert np.mean(np.any(m_image != image[:, ::-1], axis=-1)) < 0.01  # rounding at a few band edges


def test_grayscale_read_as_rgb_and_class_labels(tmp_path):
    folder = _write_folder(tmp_path / 'g', n=2, mode='L', labels=False)
    with open(os.path.join(folder, 'dataset.json'), 'w') as f:
        json.dump({'labels': [['img00000000.png', 1], ['img00000001.png', 3]]}, f)
    dataset = ImageFolderDataset(folder, use_labels=True, xflip=True)
    assert dataset.image_shape == [3, 8, 8] and dataset.label_shape == [4] and dataset.has_onehot_labels
    np.testing.assert_array_equal(dataset[3][1], [0, 0, 0, 1])
    assert np.all(dataset[1][0][:, 1:, 1:] == 10) and np.all(dataset[1][0][:, 0, 0] == 200)


def test_sixteen_bit_and_alpha_images_are_scaled_not_clipped(tmp_path):
    # PIL's convert('RGB') turned 16-bit grey almost white; the reader scales v / 257.
    folder = tmp_path / 'd'
    folder.mkdir()
    PIL.Image.fromarray(np.full((8, 8), 257 * 40, dtype=np.uint16)).save(folder / 'a.png')
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 100
    rgba[..., 3] = 0  # fully transparent: composited over white
    PIL.Image.fromarray(rgba, 'RGBA').save(folder / 'b.png')
    dataset = ImageFolderDataset(str(folder), use_labels=False)
    assert dataset.image_shape == [3, 8, 8]
    assert np.all(dataset[0][0] == 40) and np.all(dataset[1][0] == 255)


def _set_labels(folder, labels):
    with open(os.path.join(folder, 'dataset.json'), 'w') as f:
        json.dump({'labels': labels}, f)


@pytest.mark.parametrize('edit, message', [
    (lambda e: e[:2], r"1 image\(s\) without a label \['img00000002.png'\]"),
    (lambda e: e + [['gone.png', e[0][1]]], r"1 label\(s\) without an image \['gone.png'\]"),
    (lambda e: [e[0], [e[1][0], e[1][1][:16]], e[2]], r'"img00000001.png" must be 25 numbers'),
    (lambda e: [e[0], e[1], [e[2][0], [float('nan')] * 25]], r'"img00000002.png" .*non-finite'),
    (lambda e: [e[0], e[1], [e[2][0], 'abc']], r'"img00000002.png" must be 25 numbers'),
    (lambda e: [e[0], e[1], [e[2][0], [0.0] * 25]], r'"img00000002.png" is not a usable camera: its rotation'),
    (lambda e: [e[0], [e[1][0], _label(0)], e[2]],
     r'"img00000001.png" is not a usable camera: .*inside the rendered volume'),
    (lambda e: [[e[0][0], e[0][1][:16] + [-4.26] + e[0][1][17:]], e[1], e[2]],
     r'"img00000000.png" is not a usable camera: its focal length'),
    (lambda e: {'labels': e}, r'dataset.json must be \{"labels"'),
])
def test_label_errors(tmp_path, edit, message):
    folder = _write_folder(tmp_path / 'd', n=3)
    with open(os.path.join(folder, 'dataset.json')) as f:
        entries = json.load(f)['labels']
    _set_labels(folder, edit(entries))
    with pytest.raises(ValueError, match=message):
        ImageFolderDataset(folder, use_labels=True).label_shape


def test_image_errors(tmp_path):
    folder = _write_folder(tmp_path / 'd', n=2)
    with pytest.raises(ValueError, match='resolution=16'):
        ImageFolderDataset(folder, resolution=16)
    PIL.Image.new('RGB', (8, 6)).save(os.path.join(folder, 'wide.png'))
    with pytest.raises(ValueError, match='"wide.png" is 8x6.*square'):
        ImageFolderDataset(folder)
    os.remove(os.path.join(folder, 'wide.png'))
    PIL.Image.new('RGB', (16, 16)).save(os.path.join(folder, 'big.png'))
    with pytest.raises(ValueError, match=r'differ in size.*"big.png" is 16x16'):
        ImageFolderDataset(folder)
    os.remove(os.path.join(folder, 'big.png'))
    with open(os.path.join(folder, 'broken.png'), 'wb') as f:
        f.write(b'not a png at all')
    with pytest.raises(ValueError, match='cannot read image "broken.png"'):
        ImageFolderDataset(folder)
    os.remove(os.path.join(folder, 'broken.png'))
    # A PNG whose header is fine but whose pixel data is cut off fails when the item is read.
    data = open(os.path.join(folder, 'img00000001.png'), 'rb').read()
    open(os.path.join(folder, 'img00000001.png'), 'wb').write(data[:60])
    dataset = ImageFolderDataset(folder)
    with pytest.raises(ValueError, match='cannot read image "img00000001.png": image file is truncated'):
        dataset[1]


def test_path_errors(tmp_path):
    (tmp_path / 'bad.zip').write_bytes(b'PK\x03\x04 truncated')
    with pytest.raises(ValueError, match='not a valid zip'):
        ImageFolderDataset(str(tmp_path / 'bad.zip'))
    with pytest.raises(FileNotFoundError):
        ImageFolderDataset(str(tmp_path / 'missing.zip'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image files'):
        ImageFolderDataset(str(tmp_path / 'empty'))
    with pytest.raises(ValueError, match='folder or a .zip'):
        ImageFolderDataset(str(tmp_path / 'file.txt'))
