"""viewer.uploads: exemplar images and latent files are read as G expects, bad files give one clear message."""

import io

import numpy as np
import PIL.Image
import pytest
import torch

from viewer.uploads import MAX_UPLOAD_BYTES, UploadError, read_exemplar, read_latent, read_latent_file

CPU = torch.device('cpu')


def _png(array):
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format='PNG')
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_exemplar_is_read_in_minus_one_to_one():
    rgb = np.random.RandomState(0).randint(0, 256, (6, 5, 3), dtype=np.uint8)
    named = read_exemplar('style.png', _png(rgb), CPU)
    assert named.name == 'style.png' and named.tensor.shape == (1, 3, 6, 5)
    np.testing.assert_allclose(named.tensor[0].permute(1, 2, 0).numpy(), rgb / 127.5 - 1, atol=1e-6)
    assert named == read_exemplar('style.png', _png(rgb), CPU)  # same file, same cache key
    assert named != read_exemplar('style.png', _png(255 - rgb), CPU)


@pytest.mark.parametrize('content, message', [
    (b'hello, not an image', 'is not an image'),
    (b'', 'is empty'),
    (b'x' * (MAX_UPLOAD_BYTES + 1), 'over the 32 MiB limit'),
])
def test_bad_exemplar_names_the_problem(content, message):
    with pytest.raises(UploadError, match=message):
        read_exemplar('bad.png', content, CPU)


def test_huge_exemplar_is_refused_from_its_header():
    big = PIL.Image.new('L', (5000, 4000))
    buffer = io.BytesIO()
    big.save(buffer, format='PNG')
    with pytest.raises(UploadError, match='5000x4000 pixels'):
        read_exemplar('big.png', buffer.getvalue(), CPU)


def test_latent_upload_and_path(tmp_path):
    ws = np.random.RandomState(1).randn(1, 4, 8).astype(np.float32)
    named = read_latent('latent.npy', _npy(ws), 4, 8)
    assert named.tensor.dtype == torch.float32 and named.tensor.shape == (1, 4, 8)
    np.testing.assert_array_equal(named.tensor.numpy(), ws)
    np.save(tmp_path / 'latent.npy', ws)
    assert read_latent_file(str(tmp_path / 'latent.npy'), 4, 8) == named
    # (num_ws, w_dim) without the batch axis is read as training.content reads it, float64 as float32.
    np.testing.assert_array_equal(read_latent('w.npy', _npy(ws[0].astype(np.float64)), 4, 8).tensor.numpy(), ws)
    with pytest.raises(UploadError, match=r'"latent.npy" is not a w\+ latent of this network: got \(1, 3, 8\) '
                                          r'float32; use float \(1, 4, 8\) or \(4, 8\)'):
        read_latent('latent.npy', _npy(ws[:, :3]), 4, 8)
    with pytest.raises(UploadError, match='got .* int32'):
        read_latent('latent.npy', _npy(ws.astype(np.int32)), 4, 8)
    with pytest.raises(UploadError, match='NaN or infinite'):
        read_latent('latent.npy', _npy(np.full_like(ws, np.nan)), 4, 8)
    with pytest.raises(UploadError, match='not a NumPy .npy array'):
        read_latent('latent.npy', b'garbage', 4, 8)
    with pytest.raises(UploadError, match='does not exist on the server'):
        read_latent_file(str(tmp_path / 'missing.npy'), 4, 8)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{'a': 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UploadError, match='not a NumPy .npy array') as err:  # never unpickled
        read_latent('latent.npy', pickled.getvalue(), 4, 8)
    assert '\n' not in str(err.value)
