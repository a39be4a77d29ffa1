"""train.py with bad and edge inputs: one-line errors before a run folder exists, resumes that either
train through snapshots or stop first, a non-finite loss that stops training and keeps the last snapshot."""

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import legacy
import train
from tests.cli_checks import assert_done_or_one_error, assert_one_line_error, random_args, tree_digest
from tests.gen_network import write_tiny_snapshot
from tests.helpers_train import make_style_dataset
from training import adaptation_setup
from training.loss import PStyleLoss

pytestmark = pytest.mark.usefixtures('single_cpu_thread')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_style_dataset(str(tmp_path_factory.mktemp('data') / 'good'), count=2)


@pytest.fixture(scope='module')
def snapshot(data, tmp_path_factory):
    """The snapshot of a one-image pstyle run of the tiny preset."""
    outdir = tmp_path_factory.mktemp('runs')
    result = _invoke(outdir, '--data', data, '--random-perceptual', '--kimg', '0.001')
    assert result.exit_code == 0, result.output
    run_dir = outdir / os.listdir(outdir)[0]
    return str(run_dir / 'network-snapshot-000000.001.pkl')


def _invoke(outdir, *args):
    base = ['--outdir', str(outdir), '--cfg', 'tiny', '--domain', 'synthetic', '--kimg', '0.001']
    return CliRunner().invoke(train.main, base + [str(a) for a in args])


def _dataset_with_labels(path, edit):
    make_style_dataset(str(path), count=2)
    meta = json.load(open(path / 'dataset.json'))
    edit(meta['labels'])
    (path / 'dataset.json').write_text(json.dumps(meta))
    return str(path)


def test_bad_data_labels_and_files_stop_before_the_run_folder(tmp_path):
    nan = _dataset_with_labels(tmp_path / 'nan', lambda labels: labels[0][1].__setitem__(3, float('nan')))
    missing = _dataset_with_labels(tmp_path / 'missing', lambda labels: labels.pop())
    (tmp_path / 'file').write_text('mine')
    (tmp_path / 'corrupt.pkl').write_bytes(b'\x80\x04\x95garbage')
    (tmp_path / 'corrupt.pth').write_bytes(b'PK\x03\x04cut')
    cases = [
        (['--data', nan, '--random-perceptual'],
         r'--data: .*label of "img00000000.png" is not a usable camera: it has non-finite numbers'),
        (['--data', missing, '--random-perceptual'], r'--data: .*dataset.json does not match the images: 1 image'),
        (['--data', nan, '--random-perceptual', '--outdir', tmp_path / 'file'], r'--outdir: .*file is a file'),
        (['--data', nan, '--random-perceptual', '--resume', tmp_path / 'corrupt.pkl'], r'--data'),
        (['--data', _dataset_with_labels(tmp_path / 'ok', lambda labels: None), '--random-perceptual',
          '--resume', tmp_path / 'corrupt.pkl'], r'--resume .*corrupt.pkl: .*; give a complete network pickle'),
        (['--data', str(tmp_path / 'ok'), '--vgg', tmp_path / 'corrupt.pth', '--arcface', tmp_path / 'corrupt.pth'],
         r'--vgg: cannot load the VGG-19 weights .* from .*corrupt.pth: .*; give the original file'),
        (['--data', str(tmp_path / 'ok'), '--random-perceptual', '--glr', 'nan'], r'--glr.*is not a finite number'),
        (['--data', str(tmp_path / 'ok'), '--random-perceptual', '--kimg', 'inf'], r'--kimg.*is not a finite number'),
    ]
    before = tree_digest(tmp_path)
    for args, pattern in cases:
        outdir = tmp_path / 'runs'
        result = _invoke(outdir, *args) if '--outdir' not in args else _invoke(*args[-1:], *args[:-2])
        assert_one_line_error(result, pattern)
        assert not outdir.exists()
    assert tree_digest(tmp_path) == before


def test_home_is_expanded(tmp_path, monkeypatch, data):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.chdir(tmp_path)
    os.symlink(data, tmp_path / 'pixar')
    result = CliRunner().invoke(train.main, ['--outdir=~/training-runs', '--data=~/pixar', '--cfg=tiny',
                                             '--domain=synthetic', '--random-perceptual', '--dry-run'])
    assert result.exit_code == 0, result.output
    assert f'"run_dir": "{tmp_path}/training-runs/00000-' in result.output
    assert f'"path": "{tmp_path}/pixar"' in result.output and not os.path.exists(tmp_path / '~')


@pytest.mark.parametrize('args, pattern', [
    (['--domain', 'pixar'], r'--domain: the snapshot trains domain "synthetic", not "pixar"; --resume continues a '
                            r'run exactly; .*legacy.py .*--inference-only'),
    (['--method', 'finetune'], r'--method: the snapshot was trained with --method=pstyle, not finetune'),
    (['--train', 'backbone.synthesis,D'], r'--train: the snapshot trained other parts than backbone.synthesis,D'),
    (['--train', 'backbone.synthesis,superresolution,dam,encoder'], r'D not trained|other parts'),
    (['--cfg', 'ffhq512'], r'--cfg: --resume .*network-snapshot-000000.001.pkl is not a ffhq512 network: '
                           r'img_resolution 128 \(--cfg 512\), channel_base 2048 \(--cfg 32768\), channel_max 32 '
                           r'\(--cfg 512\); pass --cfg=tiny'),
])
def test_resume_with_other_settings_stops_before_training(tmp_path, snapshot, data, args, pattern):
    outdir = tmp_path / 'runs'
    result = _invoke(outdir, '--data', data, '--random-perceptual', '--resume', snapshot, *args)
    assert_one_line_error(result, pattern)
    assert not outdir.exists()


@pytest.mark.parametrize('method', ['pstyle', 'finetune'])
def test_eg3d_network_of_another_preset_stops_before_training(tmp_path, data, method):
    eg3d = str(tmp_path / 'eg3d.pkl')
    write_tiny_snapshot(eg3d)
    outdir = tmp_path / 'runs'
    result = _invoke(outdir, '--data', data, '--random-perceptual', '--resume', eg3d, '--method', method,
                     '--cfg', 'ffhq512')
    assert_one_line_error(result, r'--cfg: --resume .*eg3d.pkl is not a ffhq512 network: img_resolution 128 '
                                  r'\(--cfg 512\), .*; pass --cfg=tiny')
    assert not outdir.exists()


@pytest.mark.slow
def test_resume_with_the_same_settings_trains_through_a_snapshot(tmp_path, snapshot, data):
    result = _invoke(tmp_path, '--data', data, '--random-perceptual', '--resume', snapshot, '--kimg', '0.002')
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / os.listdir(tmp_path)[0]
    assert legacy.load_network_pkl(str(run_dir / 'network-snapshot-000000.002.pkl'))['resume_state']['iteration'] == 2


@pytest.mark.slow
def test_training_only_the_superresolution_trains_through_a_snapshot(tmp_path, data):
    """The density regulariser has no gradient then; it used to stop the first iteration with a RuntimeError."""
    result = _invoke(tmp_path, '--data', data, '--random-perceptual', '--train', 'superresolution')
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / os.listdir(tmp_path)[0]
    state = legacy.load_network_pkl(str(run_dir / 'network-snapshot-000000.001.pkl'))['resume_state']
    assert state['iteration'] == 1 and state['D_opt'] is None


def test_checkpoint_without_discriminator_needs_resume_d(tmp_path, data, monkeypatch):
    """The authors' checkpoints hold no D: train.py takes it from --resume-d or refuses before training."""
    eg3d = str(tmp_path / 'eg3d.pkl')
    write_tiny_snapshot(eg3d)
    authors = str(tmp_path / 'authors.pt')
    write_tiny_snapshot(authors, domain_names=['synthetic'])
    real = legacy.load_network_pkl

    def load(f, **kwargs):
        data = real(f, **kwargs)
        return dict(data, D=None) if os.path.basename(getattr(f, 'name', str(f))) == 'authors.pt' else data

    monkeypatch.setattr(legacy, 'load_network_pkl', load)
    monkeypatch.setattr(adaptation_setup, 'load_network_pkl', load)
    outdir = tmp_path / 'runs'
    result = _invoke(outdir, '--data', data, '--random-perceptual', '--resume', authors)
    assert_one_line_error(result, r"--resume-d: --resume .*authors.pt has no discriminator .*pass EG3D's network "
                                  r"pickle of the same resolution")
    assert_one_line_error(_invoke(outdir, '--data', data, '--random-perceptual', '--resume', eg3d, '--resume-d', eg3d),
                          r'--resume-d: only a --resume without a discriminator takes one')
    assert not outdir.exists()
    c, _ = train.validate_and_build(train.apply_presets(*_context(
        ['--outdir', str(outdir), '--cfg', 'tiny', '--data', data, '--domain', 'synthetic', '--random-perceptual',
         '--resume', authors, '--resume-d', eg3d])))
    nets = adaptation_setup.prepare_networks(c.resume_pkl, c.G_kwargs, c.D_kwargs, 'pstyle', 'synthetic',
                                             c.domain_kwargs, resume_d_pkl=c.resume_d_pkl)
    reference = real(eg3d)['D'].state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in nets['D'].state_dict().items())


def _context(args):
    ctx = train.main.make_context('train.py', list(args))
    return ctx, ctx.params


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_snapshot(tmp_path, data, monkeypatch):
    real = PStyleLoss.accumulate_gradients
    calls = []

    def poisoned(self, phase, *args, **kwargs):
        out, renders = real(self, phase, *args, **kwargs)
        calls.append(phase)
        if calls.count('Gmain') >= 2:  # from the second iteration on
            out = {name: torch.tensor(float('nan')) for name in out}
        return out, renders

    monkeypatch.setattr(PStyleLoss, 'accumulate_gradients', poisoned)
    result = _invoke(tmp_path, '--data', data, '--random-perceptual', '--kimg', '0.003', '--tick', '0.001',
                     '--snap', '1', '--img-snap', '1')
    run_dir = tmp_path / os.listdir(tmp_path)[0]
    message = assert_one_line_error(result, r'Loss/.* became nan at tick 1 \(kimg 0.002\); training stopped '
                                            r'without writing this tick and the last good snapshot is .*'
                                            r'network-snapshot-000000.001.pkl; lower --glr/--dlr')
    assert message
    files = set(os.listdir(run_dir))
    assert 'network-snapshot-000000.001.pkl' in files and 'fakes000000.001.png' in files
    assert not [f for f in files if '000000.002' in f or '000000.003' in f]


def test_two_runs_taking_the_same_number_do_not_collide(tmp_path, data, monkeypatch):
    c, desc = train.validate_and_build(train.apply_presets(*_context(
        ['--outdir', str(tmp_path), '--cfg', 'tiny', '--data', data, '--domain', 'synthetic', '--random-perceptual'])))
    (tmp_path / f'00000-{desc}').mkdir()  # another train.py took 00000 after this one listed the folder
    numbers = iter([0, 1])
    monkeypatch.setattr(train, '_next_run_id', lambda outdir: next(numbers))
    monkeypatch.setattr(train, 'subprocess_fn', lambda *args: None)
    assert train.launch_training(c, desc, str(tmp_path), dry_run=False) == str(tmp_path / f'00001-{desc}')


def test_random_option_sweep_dry_run(tmp_path, data):
    rng = np.random.RandomState(3)
    choices = {'--glr': ['1e-4', 'nan', '-1', None], '--gamma': ['0', 'inf', None], '--batch': ['1', '2', '0', None],
               '--gpus': ['1', '2', None], '--trunc': ['0.5', '-0.1', None], '--tick': ['0', '0.5', None],
               '--method': ['pstyle', 'finetune', 'x', None], '--train': ['D', 'nosuch', None]}
    for _ in range(10):
        outdir = tmp_path / 'runs'
        args = ['--data', data, '--random-perceptual', '--dry-run'] + random_args(rng, choices)
        assert_done_or_one_error(_invoke(outdir, *args), args)
        assert not outdir.exists()
