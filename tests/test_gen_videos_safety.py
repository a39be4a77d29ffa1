"""gen_videos.py with bad and edge inputs: one-line errors before any network work, names that tell
seed lists apart, videos replaced only when complete."""

import os

import numpy as np
import pytest

import gen_videos
from tests import cli_checks
from tests.cli_checks import (GENERATION_OPTION_CASES, assert_one_line_error, check_bad_generation_options,
                               tree_digest)


network = pytest.fixture(scope='module', name='network')(cli_checks.tiny_network)
_run = cli_checks.cpu_runner(gen_videos.generate_videos)


def test_head_names_tell_lists_from_ranges():
    assert gen_videos.heads_name([0, 5]) == 'seeds0_5'
    assert gen_videos.heads_name([0, 1, 2, 3, 4, 5]) == 'seeds0-5'
    assert gen_videos.heads_name([0, 1, 2, 7, 9, 10]) == 'seeds0-2_7_9-10'
    long_a, long_b = list(range(0, 200, 2)), list(range(0, 200, 2))[:-1] + [197]
    assert len(gen_videos.heads_name(long_a)) < 60
    assert gen_videos.heads_name(long_a) != gen_videos.heads_name(long_b)
    assert gen_videos.video_name([0, 5], (2, 1), 'orbit', 'image', 'toon', 0.004) == \
        'seeds0_5_2x1_orbit_image_toon_alpha0.004.mp4'
    assert gen_videos.heads_name(['anna', 'ben']) == 'anna+ben'  # projected latents by name


@pytest.mark.parametrize('args, pattern', GENERATION_OPTION_CASES + [
    (['--grid=0x2'], r'--grid.*is not a grid size'),
    (['--seeds=0-2', '--grid=2x1'], r'3 seeds do not fill a 2x1 grid evenly'),
])
def test_bad_options_are_one_line(tmp_path, network, args, pattern):
    check_bad_generation_options(_run, tmp_path, network, args, pattern)


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
        args += cli_checks.random_args(rng, choices)
        if cli_checks.assert_done_or_one_error(_run(*args), args):
            assert os.listdir(outdir) and all(n.endswith('.mp4') for n in os.listdir(outdir)), args
        else:
            assert not os.path.exists(outdir), args
