"""gen_videos.py with bad and edge inputs: one-line errors before any network work, names that tell
seed lists apart, videos replaced only when complete."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

import gen_videos
from tests.cli_checks import assert_one_line_error, tree_digest
from tests.gen_network import write_tiny_snapshot


@pytest.fixture(scope='module')
def network(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('net') / 'tiny.pkl')
    write_tiny_snapshot(path, domain_names=['toon'])
    return path


def _run(*args):
    return CliRunner().invoke(gen_videos.generate_videos, ['--device=cpu', *[str(a) for a in args]])


def test_seed_names_tell_lists_from_ranges():
    assert gen_videos.seeds_name([0, 5]) == 'seeds0_5'
    assert gen_videos.seeds_name([0, 1, 2, 3, 4, 5]) == 'seeds0-5'
    assert gen_videos.seeds_name([0, 1, 2, 7, 9, 10]) == 'seeds0-2_7_9-10'
    long_a, long_b = list(range(0, 200, 2)), list(range(0, 200, 2))[:-1] + [197]
    assert len(gen_videos.seeds_name(long_a)) < 60
    assert gen_videos.seeds_name(long_a) != gen_videos.seeds_name(long_b)
    assert gen_videos.video_name([0, 5], (2, 1), 'orbit', 'image', 'toon', 0.004) == \
        'seeds0_5_2x1_orbit_image_toon_alpha0.004.mp4'


@pytest.mark.parametrize('args, pattern', [
    (['--fov-deg=nan'], r"--fov-deg.*is not a finite number"),
    (['--trunc=inf'], r"--trunc.*is not a finite number"),
    (['--alpha=nan'], r"--alpha.*is not a finite number"),
    (['--seeds=0-1000000000'], r"--seeds.*is 1000000001 seeds; give at most"),
    (['--grid=0x2'], r'--grid.*is not a grid size'),
    (['--seeds=0-2', '--grid=2x1'], r'3 seeds do not fill a 2x1 grid evenly'),
    (['--outdir='], r'--outdir.*is empty'),
    (['--outdir={tmp}/file.txt'], r'--outdir: .*file.txt is a file, not a folder'),
    (['--network={tmp}/file.txt'], r'--network .*file.txt: .*; give a complete network pickle'),
    (['--exemplar={tmp}/missing.png'], r'exemplar image ".*missing.png" does not exist'),
])
def test_bad_options_are_one_line(tmp_path, network, args, pattern):
    (tmp_path / 'file.txt').write_text('mine')
    before = tree_digest(tmp_path)
    args = [a.replace('{tmp}', str(tmp_path)) for a in args]
    assert_one_line_error(_run(f'--network={network}', f'--outdir={tmp_path / "out"}', *args), pattern)
    assert tree_digest(tmp_path) == before


def test_interrupted_video_leaves_the_old_one_and_needs_overwrite(tmp_path, network, monkeypatch):
    args = [f'--network={network}', f'--outdir={tmp_path}', '--w-frames=2', '--domain=toon']
    assert _run(*args).exit_code == 0
    assert os.listdir(tmp_path) == ['seeds0_1x1_orbit_image_toon_alpha1.00.mp4']
    before = tree_digest(tmp_path)
    assert_one_line_error(_run(*args), r'seeds0_1x1_orbit_image_toon_alpha1.00.mp4 already exist\(s\); '
                                       r'pass --overwrite')
    real = gen_videos.render_frames

    def interrupted(*a, **kw):
        frames = real(*a, **kw)
        yield next(frames)
        raise KeyboardInterrupt

    monkeypatch.setattr(gen_videos, 'render_frames', interrupted)
    _run(*args, '--overwrite')
    assert tree_digest(tmp_path) == before  # the complete old video, and no partial file


def test_random_option_sweep(tmp_path, network):
    rng = np.random.RandomState(2)
    choices = {'--seeds': ['0', '0,5', '0-1', 'a'], '--grid': ['1x1', '2x1', 'x2', None],
               '--num-keyframes': ['1', '0', None], '--camera': ['orbit', 'zoom', 'spin', None],
               '--image-mode': ['image', 'image_depth', 'depth', None], '--fps': ['1', '0', None],
               '--alpha': ['0', '0,1', 'x', None]}
    for trial in range(8):
        outdir = tmp_path / f'out{trial}'
        args = [f'--network={network}', f'--outdir={outdir}', '--w-frames=1', '--domain=toon']
        for option, values in choices.items():
            value = values[rng.randint(len(values))]
            args += [] if value is None else [f'{option}={value}']
        result = _run(*args)
        assert isinstance(result.exception, SystemExit) or result.exception is None, (args, result.output)
        if result.exit_code == 0:
            assert os.listdir(outdir) and all(n.endswith('.mp4') for n in os.listdir(outdir)), args
        else:
            assert 'Error: ' in result.output and not os.path.exists(outdir), (args, result.output)
