"""projector.py: outputs of a (very short) run on the demo network, the latent folder, and bad input."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

import legacy
import projector
from inversion.projection import RENDER_SEED, seeded_render
from training import inference
from training.content import LatentFolderContent
from tests.cli_checks import assert_one_line_error
from tests.helpers_inversion import camera, load_demo, true_latent

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAST = ['--num-steps=2', '--pti-steps=1', '--random-perceptual', '--device=cpu', '--views=0.4:0', '--alpha=0,1']


def run(args):
    return CliRunner().invoke(projector.run_projection, [str(a) for a in args])


@pytest.fixture(scope='module')
def crops(tmp_path_factory):
    """Two renders of the demo network saved as EG3D crops, with their cameras in a dataset.json."""
    folder = tmp_path_factory.mktemp('crops')
    G = load_demo()
    labels = []
    for seed, yaw in ((1, 0.3),):
        c = camera(G, yaw)
        image = seeded_render(G, true_latent(G, seed), c)
        PIL.Image.fromarray(inference.image_to_uint8(image)[0]).save(folder / f'head{seed}.png')
        labels.append([f'head{seed}.png', c[0].tolist()])
    (folder / 'dataset.json').write_text(json.dumps({'labels': labels}))
    return folder


@pytest.mark.slow
def test_folder_of_crops_writes_every_output_and_a_content_folder(crops, tmp_path):
    # One crop keeps the test short; every photo of a folder goes through the same steps.
    out = tmp_path / 'out'
    result = run(['--target', crops, '--camera', crops / 'dataset.json', '--no-align', '--outdir', out, *FAST])
    assert result.exit_code == 0, result.output
    G = load_demo()
    for stem in ('head1',):
        folder = out / stem
        assert sorted(os.listdir(folder)) == ['camera.npy', 'latent.npy', 'metrics.json', 'network-pti.pkl',
                                             'proj.png', 'pti.png', 'stylised_grid.png', 'target.png']
        latent = np.load(folder / 'latent.npy')
        assert latent.dtype == np.float32 and latent.shape == (1, G.backbone.num_ws, G.w_dim)
        cam = np.load(folder / 'camera.npy')
        assert cam.dtype == np.float32 and cam.shape == (25,)
        assert np.asarray(PIL.Image.open(folder / 'stylised_grid.png')).shape == (2 * 128, 2 * 128, 3)
        metrics = json.loads((folder / 'metrics.json').read_text())
        assert metrics['projection']['steps'] == 2 and metrics['pivotal_tuning']['steps'] == 1
        assert metrics['pivotal_tuning']['tuned_parameters'] > 0 and 'lpips' not in metrics['projection']
        # The tuned network loads safely and keeps its domain path, encoder and stored domains.
        tuned = legacy.load_network_pkl(str(folder / 'network-pti.pkl'))['G_ema']
        assert tuned.domain_names == G.domain_names and tuned.encoder is not None
        assert torch.equal(tuned.domain_codes, G.domain_codes)
        assert torch.equal(tuned.encoder.state_dict()[next(iter(tuned.encoder.state_dict()))],
                           G.encoder.state_dict()[next(iter(G.encoder.state_dict()))])
        # pti.png is the tuned network's render of the latent (PSNR in metrics.json is of that render).
        c = torch.from_numpy(cam)[None]
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(RENDER_SEED)
            image = tuned.synthesis(torch.from_numpy(latent), c, noise_mode='const')['image']
        saved = np.asarray(PIL.Image.open(folder / 'pti.png'))
        np.testing.assert_array_equal((image[0].permute(1, 2, 0) * 127.5 + 128).clamp(0, 255).byte().numpy(), saved)
    content = LatentFolderContent(str(out / 'latents'), G.backbone.num_ws, G.w_dim)
    assert content.names == ['head1.npy']
    np.testing.assert_array_equal(content.ws[0].numpy(), np.load(out / 'head1' / 'latent.npy')[0])
    np.testing.assert_array_equal(content.c[0].numpy(), np.load(out / 'head1' / 'camera.npy'))

    # Existing outputs are kept unless --overwrite is given.
    again = run(['--target', crops / 'head1.png', '--camera', crops / 'dataset.json', '--no-align',
                 '--outdir', out, *FAST])
    assert again.exit_code == 1 and 'already exist(s); pass --overwrite' in again.output, again.output
    assert 'Traceback' not in again.output and len(again.output.strip().splitlines()) == 1


@pytest.mark.parametrize('extra, message', [
    ([], 'projection needs LPIPS weights: --vgg16='),
    (['--random-perceptual', '--no-align'], '--no-align needs --camera'),
    (['--random-perceptual', '--no-align', '--camera=short.npy'], 'has 16 numbers; a camera label has 25'),
    (['--random-perceptual', '--no-align', '--camera=cam.npy', '--target=notes.png'], 'cannot read image'),
    (['--random-perceptual', '--no-align', '--camera=cam.npy', '--network=notes.png'], '--network notes.png: '),
    (['--random-perceptual', '--no-align', '--camera=cam.npy', '--lr=nan'], "'nan' is not a finite number"),
])
def test_bad_input_is_one_clear_line(crops, tmp_path, extra, message):
    np.save(tmp_path / 'short.npy', np.zeros(16, np.float32))
    np.save(tmp_path / 'cam.npy', np.asarray(json.loads((crops / 'dataset.json').read_text())['labels'][0][1],
                                             np.float32))
    (tmp_path / 'notes.png').write_text('not an image')
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        args = [f'--target={crops / "head1.png"}', '--outdir=out', '--device=cpu', *extra]
        result = run(args)
    finally:
        os.chdir(cwd)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert 'Traceback' not in result.output
    assert not (tmp_path / 'out' / 'head1').exists()


def test_outdir_checks_happen_before_any_work(crops, tmp_path, monkeypatch):
    """dnnlib.cli's checks: `~` expanded, an --outdir that is a file refused, no output inside an input folder."""
    monkeypatch.setenv('HOME', str(tmp_path))
    os.makedirs(tmp_path / 'out' / 'head1')
    common = ['--no-align', '--camera', crops / 'dataset.json', '--random-perceptual', '--device=cpu']
    existing = run(['--target', crops / 'head1.png', '--outdir=~/out', *common])
    assert_one_line_error(existing, re.escape(f'{tmp_path / "out" / "head1"} already exist(s)'))
    (tmp_path / 'file').write_text('')
    assert_one_line_error(run(['--target', crops / 'head1.png', '--outdir=~/file', *common]), 'is a file, not a folder')
    assert_one_line_error(run(['--target', crops, '--outdir', crops / 'out', *common]), 'lies inside the input')
    assert sorted(os.listdir(crops)) == ['dataset.json', 'head1.png']


@pytest.mark.slow
def test_sigterm_mid_run_leaves_no_temporary_folder(crops, tmp_path):
    """Regression: a projector.py stopped by SIGTERM (kill, a job scheduler) left `.head1.*.tmp` in --outdir."""
    out = tmp_path / 'out'
    proc = subprocess.Popen([sys.executable, 'projector.py', '--target', str(crops / 'head1.png'), '--no-align',
                             '--camera', str(crops / 'dataset.json'), '--outdir', str(out), '--random-perceptual',
                             '--num-steps=100000', '--pti-steps=0', '--device=cpu'],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    try:
        end = time.monotonic() + 120
        while not (out.is_dir() and os.listdir(out)):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < end, 'no temporary output folder within 120 s'
            time.sleep(0.1)
        assert [name.startswith('.head1.') and name.endswith('.tmp') for name in os.listdir(out)] == [True]
        time.sleep(1)  # into the projection steps
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert os.listdir(out) == [], output
    assert proc.returncode != 0 and proc.returncode != -signal.SIGTERM, output  # stopped by the handler, not killed
