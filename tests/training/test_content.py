"""Content sources of training/content.py: latent folders and sampled latents."""

import json

import numpy as np
import pytest
import torch

from tests.helpers_train import camera_label
from training.content import LatentFolderContent, SampledContent


def _write_folder(path, num_ws=3, w_dim=4, n=3, labels=True):
    rng = np.random.RandomState(0)
    ws = rng.randn(n, num_ws, w_dim).astype(np.float32)
    cams = np.array([camera_label(yaw=0.1 * i) for i in range(n)], dtype=np.float32)
    names = []
    for i in range(n):
        name = f'w{i}.npy' if i % 2 == 0 else f'w{i}.pt'
        if name.endswith('.npy'):
            np.save(path / name, ws[i])
        else:
            torch.save(torch.from_numpy(ws[i][None]), path / name)  # (1, num_ws, w_dim) is accepted too
        names.append(name)
    if labels:
        (path / 'dataset.json').write_text(json.dumps({'labels': [[nm, cams[i].tolist()] for i, nm in enumerate(names)]}))
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
    with pytest.raises(ValueError, match=r'must be \(5, 4\)'):
        LatentFolderContent(str(tmp_path), 5, 4)


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
