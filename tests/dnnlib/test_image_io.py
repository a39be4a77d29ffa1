"""dnnlib.image_io.read_image: every pixel format scaled by its real range, alpha, EXIF, bad files."""

import io

import numpy as np
import PIL.Image
import pytest

from dnnlib.image_io import ImageReadError, read_image

RNG = np.random.RandomState(0)
RGB = RNG.randint(0, 256, (5, 7, 3)).astype(np.uint8)


def _save(tmp_path, image: PIL.Image.Image, name: str, **kwargs) -> str:
    path = str(tmp_path / name)
    image.save(path, **kwargs)
    return path


def test_8bit_rgb_and_greyscale_read_exactly(tmp_path):
    out = read_image(_save(tmp_path, PIL.Image.fromarray(RGB), 'a.png'))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, RGB)
    grey = RGB[:, :, 0]
    np.testing.assert_array_equal(read_image(_save(tmp_path, PIL.Image.fromarray(grey), 'g.png')),
                                  np.stack([grey] * 3, axis=2))


def test_16bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1, 128, 129], [257, 32767, 65278, 65535]], dtype=np.uint16)
    path = _save(tmp_path, PIL.Image.fromarray(values), 'sixteen.png')
    assert PIL.Image.open(path).mode.startswith('I')
    out = read_image(path)
    np.testing.assert_array_equal(out[:, :, 0], [[0, 0, 0, 1], [1, 127, 254, 255]])  # round(v / 257)
    assert (out[:, :, 0] == out[:, :, 2]).all()


def test_float_images_in_0_1_are_scaled_and_others_refused(tmp_path):
    values = np.array([[0.0, 0.25, 0.5], [0.75, 0.999, 1.0]], dtype=np.float32)
    out = read_image(_save(tmp_path, PIL.Image.fromarray(values, mode='F'), 'f.tiff'))
    np.testing.assert_array_equal(out[:, :, 1], np.round(values * 255).astype(np.uint8))
    with pytest.raises(ImageReadError, match=r'values in \[0, 255\]; expected \[0, 1\]'):
        read_image(_save(tmp_path, PIL.Image.fromarray(values * 255, mode='F'), 'f255.tiff'))
    nan = values.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ImageReadError, match='NaN'):
        read_image(_save(tmp_path, PIL.Image.fromarray(nan, mode='F'), 'nan.tiff'))


def test_alpha_is_composited_over_the_background_or_refused(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = [200, 100, 0]
    rgba[..., 3] = [[255, 0], [128, 64]]
    path = _save(tmp_path, PIL.Image.fromarray(rgba, mode='RGBA'), 'rgba.png')
    alpha = rgba[..., 3:] / 255
    for bg in [(255, 255, 255), (0, 0, 0), (10, 20, 30)]:
        expected = np.round(rgba[..., :3] * alpha + np.array(bg) * (1 - alpha)).astype(np.uint8)
        np.testing.assert_array_equal(read_image(path, background=bg), expected)
    with pytest.raises(ImageReadError, match='transparent pixels'):
        read_image(path, background=None)
    opaque = rgba.copy()
    opaque[..., 3] = 255
    opaque_path = _save(tmp_path, PIL.Image.fromarray(opaque, mode='RGBA'), 'opaque.png')
    np.testing.assert_array_equal(read_image(opaque_path, background=None), opaque[..., :3])


def test_palette_images_and_their_transparency(tmp_path):
    palette = PIL.Image.fromarray(RGB).convert('P', palette=PIL.Image.ADAPTIVE, colors=8)
    path = _save(tmp_path, palette, 'p.png')
    np.testing.assert_array_equal(read_image(path), np.asarray(palette.convert('RGB')))
    index = np.asarray(palette)[0, 0]
    transparent = _save(tmp_path, palette, 'pt.png', transparency=int(index))
    out = read_image(transparent, background=(0, 255, 0))
    assert tuple(out[0, 0]) == (0, 255, 0)
    with pytest.raises(ImageReadError, match='transparent'):
        read_image(transparent, background=None)


def test_exif_orientation_is_applied(tmp_path):
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = _save(tmp_path, PIL.Image.fromarray(RGB), 'rot.png', exif=exif)
    out = read_image(path)
    assert out.shape == (7, 5, 3)
    np.testing.assert_array_equal(out, np.rot90(RGB, k=-1))


def test_bytes_and_file_objects(tmp_path):
    buffer = io.BytesIO()
    PIL.Image.fromarray(RGB).save(buffer, format='PNG')
    np.testing.assert_array_equal(read_image(buffer.getvalue()), RGB)
    buffer.seek(0)
    np.testing.assert_array_equal(read_image(buffer), RGB)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(ImageReadError, match='"missing.png" does not exist'):
        read_image(str(tmp_path / 'missing.png'), name='missing.png')
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(ImageReadError, match=r'cannot read image ".*notes\.png"'):
        read_image(str(tmp_path / 'notes.png'))
    buffer = io.BytesIO()
    PIL.Image.fromarray(RNG.randint(0, 256, (64, 64, 3)).astype(np.uint8)).save(buffer, format='JPEG')
    (tmp_path / 'cut.jpg').write_bytes(buffer.getvalue()[:400])
    with pytest.raises(ImageReadError, match='cut.jpg'):
        read_image(str(tmp_path / 'cut.jpg'))
    with pytest.raises(ImageReadError, match='upload'):
        read_image(b'\x89PNG garbage', name='upload')
    assert issubclass(ImageReadError, ValueError)
