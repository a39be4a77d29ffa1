"""Content sources of training/content.py: latent folders and sampled latents."""

import json

import numpy as np
import pytest
import torch

from camera_utils import camera_label
from training.content import LatentError, LatentFolderContent, SampledContent, read_latent


def _write_folder(path, num_ws=3, w_dim=4, n=3, labels=True):
    rng = np.random.RandomState(0)
    ws = rng.randn(n, num_ws, w_dim).astype(np.float32)
    cams = torch.cat([camera_label(0.1 * i) for i in range(n)]).numpy()
    names = []
    for i in range(n):
        name = f'w{i}.npy' if i % 2 == 0 else f'w{i}.pt'
        if name.endswith('.npy'):
            np.save(path / name, ws[i])
        else:
            torch.save(torch.from_numpy(ws[i][None]), path / name)  # (1, num_ws, w_dim) is accepted too
        names.append(name)
    if labels:
        (path / 'dataset.json').write_text(
            json.dumps({'labels': [[nm, cams[i].tolist()] for i, nm in enumerate(names)]}))
    return ws, cams


def test_latent_folder_draws_stored_pairs(tmp_path):
    ws, cams = _write_folder(tmp_path)
    source = LatentFolderContent(str(tmp_path), num_ws=3, w_dim=4)
    assert len(source) == 3
    out_ws, out_c = source(5, torch.device('cpu'), torch.Generator().manual_seed(0))
    idx = torch.randint(3, [5], generator=torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(out_ws.numpy(), ws[idx])
    np.testing.assert_array_equal(out_c.numpy(), cams[idx])


def test_latent_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        LatentFolderContent(str(tmp_path / 'nope'), 3, 4)
    with pytest.raises(ValueError, match='no .npy/.pt'):
        LatentFolderContent(str(tmp_path), 3, 4)
    _write_folder(tmp_path, labels=False)
    with pytest.raises(FileNotFoundError, match='dataset.json'):
        LatentFolderContent(str(tmp_path), 3, 4)
    _write_folder(tmp_path)
    with pytest.raises(LatentError, match=r'got \(3, 4\) float32; use float \(1, 5, 4\) or \(5, 4\)'):
        LatentFolderContent(str(tmp_path), 5, 4)


def test_read_latent_takes_a_path_or_bytes(tmp_path):
    ws = np.random.RandomState(2).randn(1, 3, 4).astype(np.float32)
    np.save(tmp_path / 'w.npy', ws)
    torch.save(torch.from_numpy(ws[0]).double(), tmp_path / 'w.pt')
    for source, name in ((str(tmp_path / 'w.npy'), ''), ((tmp_path / 'w.npy').read_bytes(), 'up.npy'),
                         (str(tmp_path / 'w.pt'), ''), ((tmp_path / 'w.pt').read_bytes(), 'up.pt')):
        out = read_latent(source, 3, 4, name=name)
        assert out.dtype == torch.float32 and out.shape == (3, 4)
        np.testing.assert_allclose(out.numpy(), ws[0], rtol=0, atol=1e-7)


@pytest.mark.parametrize('content, name, message', [
    (np.zeros((2, 3, 4), np.float32), 'a.npy', r'"a.npy" is not a w\+ latent of this network: got \(2, 3, 4\) float32'),
    (np.zeros((3, 4), np.int64), 'a.npy', r'got \(3, 4\) int64'),
    (np.array([[np.inf] * 4] * 3, np.float32), 'a.npy', 'NaN or infinite numbers; project the photo again'),
    (b'not numpy', 'a.npy', r'"a.npy" is not a NumPy .npy array \(.*\); use the latent.npy projector.py writes'),
    (b'not torch', 'a.pt', r'"a.pt" is not a PyTorch tensor file'),
    ({'ws': torch.zeros(3, 4)}, 'a.pt', 'holds a dict, not a single tensor'),
])
def test_read_latent_refuses_bad_files_in_one_line(tmp_path, content, name, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif name.endswith('.pt'):
        torch.save(content, path)
    else:
        np.save(path, content)
    for source in (str(path), path.read_bytes()):
        with pytest.raises(LatentError, match=message) as err:
            read_latent(source, 3, 4, name=name)
        assert '\n' not in str(err.value)
    with pytest.raises(LatentError, match='does not exist'):
        read_latent(str(tmp_path / 'missing.npy'), 3, 4)


class _Mapping(torch.nn.Module):
    """Stand-in for G_src.mapping: ws = psi * (z[:, :4] + c[:, :4]) broadcast to 2 layers."""
    z_dim = 8

    def mapping(self, z, c, truncation_psi=1.0):
        return (truncation_psi * (z[:, :4] + c[:, :4])).unsqueeze(1).repeat(1, 2, 1)


def test_sampled_content_uses_dataset_cameras_and_truncation():
    cams = np.arange(3 * 25, dtype=np.float32).reshape(3, 25)
    source = SampledContent(_Mapping(), cams, truncation_psi=0.5)
    ws, c = source(4, torch.device('cpu'), torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    z = torch.randn([4, 8], generator=gen)
    idx = torch.randint(3, [4], generator=gen)
    np.testing.assert_array_equal(c.numpy(), cams[idx.numpy()])
    np.testing.assert_allclose(ws[:, 1].numpy(), 0.5 * (z[:, :4] + c[:, :4]).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r'\(M, 25\)'):
        SampledContent(_Mapping(), cams[:, :16])
