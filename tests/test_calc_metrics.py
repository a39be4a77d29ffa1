"""calc_metrics.py: StyleGAN3's JSON lines, --images against a dataset, and bad input as one clear line."""

import io
import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest
import scipy.linalg
import torch
from click.testing import CliRunner

import calc_metrics
from metrics.inception import InceptionV3
from tests.gen_network import write_tiny_snapshot
from tests.helpers_metrics import read_pngs


def _run(*args):
    result = CliRunner().invoke(calc_metrics.main, ['--device=cpu', '--no-progress', *args])
    return result.exit_code, result.output


def _zip_images(path: str) -> np.ndarray:
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith('.png'))
        return np.stack([np.asarray(PIL.Image.open(io.BytesIO(zf.read(n))).convert('RGB')).transpose(2, 0, 1)
                         for n in names])


def test_images_folder_fid_and_kid_match_a_direct_computation(heads, inception_file, cache_dir, tmp_path):
    outdir = tmp_path / 'out'
    code, output = _run('--metrics=fid50k_full,kid50k_full', f'--data={heads["natural"]}',
                        f'--images={heads["toon_dir"]}', f'--inception={inception_file}', f'--outdir={outdir}')
    assert code == 0, output
    records = [json.loads(line) for line in output.splitlines() if line.startswith('{')]
    assert [r['metric'] for r in records] == ['fid50k_full', 'kid50k_full']
    for record in records:
        assert set(record) >= {'results', 'metric', 'total_time', 'total_time_str', 'num_gpus', 'snapshot_pkl',
                               'timestamp'}
        assert record['num_gpus'] == 1 and record['num_images'] == dict(real=4, gen=4)
        saved = (outdir / f'metric-{record["metric"]}.jsonl').read_text().splitlines()
        assert json.loads(saved[-1]) == record

    # The same numbers from features computed here and textbook formulas.
    net = InceptionV3(inception_file)
    with torch.no_grad():
        real = net(torch.from_numpy(_zip_images(heads['natural'])))[0].double().numpy()
        gen = net(torch.from_numpy(read_pngs(heads['toon_dir'])))[0].double().numpy()
    mu_r, mu_g = real.mean(0), gen.mean(0)
    s_r, s_g = np.cov(real, rowvar=False, bias=True), np.cov(gen, rowvar=False, bias=True)
    # The covariances have rank 3 of 2048: sqrtm of their product is ill-conditioned, so compare on the
    # span of the features, where the trace term is the same.
    basis = scipy.linalg.orth(np.concatenate([real - mu_r, gen - mu_g]).T)
    p_r, p_g = basis.T @ s_r @ basis, basis.T @ s_g @ basis
    fid = np.sum((mu_r - mu_g) ** 2) + np.trace(p_r) + np.trace(p_g) - 2 * np.trace(scipy.linalg.sqrtm(p_r @ p_g)).real
    assert records[0]['results']['fid50k_full'] == pytest.approx(fid, rel=1e-4)
    d, m = real.shape[1], len(real)
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kid = ((k(gen, gen).sum() - np.trace(k(gen, gen)) + k(real, real).sum() - np.trace(k(real, real))) / (m * (m - 1))
           - 2 * k(gen, real).mean())
    assert records[1]['results']['kid50k_full'] == pytest.approx(kid, rel=1e-4, abs=1e-9)


@pytest.mark.parametrize('case, expected', [
    ('non_image', 'holds 1 file(s) that are not images: notes.txt'),
    ('mixed_sizes', 'mixes image sizes'),
    ('too_few', 'IS needs at least 10 images in the --images folder, got 4'),
    ('missing_weights', '(calc_metrics.py: --inception=PATH_OR_URL)'),
    ('offline_url', 'If this machine is offline, fetch the file elsewhere and pass its local path'),
    ('no_data', '--images compares a folder with a dataset: give --data too'),
    ('unknown_metric', 'unknown metric(s) fid50k; valid metrics: fid50k_full'),
])
def test_bad_input_is_one_clear_line(case, expected, heads, inception_file, cache_dir, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in sorted(os.listdir(heads['toon_dir'])):
        (folder / name).write_bytes((open(os.path.join(heads['toon_dir'], name), 'rb')).read())
    args = ['--metrics=is50k' if case == 'too_few' else '--metrics=fid50k_full', f'--data={heads["natural"]}',
            f'--images={folder}', f'--inception={inception_file}']
    if case == 'non_image':
        (folder / 'notes.txt').write_text('x')
    elif case == 'mixed_sizes':
        PIL.Image.new('RGB', (16, 16)).save(folder / 'small.png')
    elif case == 'missing_weights':
        args[-1] = f'--inception={tmp_path / "absent.pth"}'
    elif case == 'offline_url':  # nothing listens on port 9 (discard): the download fails at once
        args[-1] = '--inception=http://127.0.0.1:9/pt_inception-2015-12-05-6726825d.pth'
    elif case == 'no_data':
        args.pop(1)
    elif case == 'unknown_metric':
        args[0] = '--metrics=fid50k'
    code, output = _run(*args)
    assert code != 0 and expected in output and 'Traceback' not in output, output
    assert [line for line in output.splitlines() if line.startswith('Error')] != []


def test_stylisation_metric_on_a_plain_network_says_what_it_needs(heads, tmp_path):
    pkl = tmp_path / 'plain.pkl'
    write_tiny_snapshot(str(pkl))
    code, output = _run('--metrics=identity1k', f'--network={pkl}', f'--data={heads["natural"]}')
    assert code == 1 and 'Error: this metric compares natural and stylised renders' in output, output
    assert not (tmp_path / 'metric-identity1k.jsonl').exists()
