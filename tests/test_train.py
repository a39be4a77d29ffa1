"""train.py: every bad option stops with a clear error before any work; presets and dry runs."""

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

import configs
import gen_utils
import train
from tests.helpers_train import build_config, make_style_dataset

pytestmark = pytest.mark.usefixtures('single_cpu_thread')

DEMO_NETWORK = os.path.join(gen_utils.REPO_ROOT, gen_utils.DEMO_NETWORK)


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    return dict(good=make_style_dataset(str(root / 'good'), count=2),
                unlabelled=make_style_dataset(str(root / 'unlabelled'), count=2, labels=False),
                small=make_style_dataset(str(root / 'small'), count=2, resolution=64))


def _invoke(outdir, *args):
    base = ['--outdir', str(outdir), '--cfg', 'tiny', '--domain', 'synthetic', '--kimg', '0.001']
    return CliRunner().invoke(train.main, base + list(args))


@pytest.mark.parametrize('case, expected', [
    ('missing_data', r'--data: dataset ".*nope" does not exist'),
    ('unlabelled', r'--data: the style dataset needs a 25-number camera label per image'),
    ('resolution', r'--data: images are 64x64 but the network renders 128x128'),
    ('domain', r'--domain: unknown domain "nosuch": expected a preset in configs/domains'),
    ('no_vgg', r'--vgg: missing: pass the path or URL of the VGG-19 weights'),
    ('vgg_file', r'--vgg: file ".*missing.pth" does not exist'),
    ('cfg', r'--cfg: unknown config preset \(--cfg\) "huge"'),
    ('train_part', r'--train part "nosuch" selects no generator parameter'),
    ('finetune_dam', r'--train: --method=finetune trains no domain path'),
    ('content', r'--content: --content folder ".*nope" does not exist'),
    ('modres_finetune', r'--modres-max-res: only --method=pstyle adds a DAM'),
    ('sr_modres_finetune', r'--sr-modres: only --method=pstyle adds a DAM'),
    ('sr_modres_resume', r'--sr-modres: --resume already has a DAM with sr_modres=True; its layout cannot change'),
    ('modres_resume', r'--modres-max-res: --resume already has a DAM with modres_max_res=0; its layout cannot change'),
])
def test_bad_options_stop_before_any_work(datasets, tmp_path, case, expected):
    outdir = tmp_path / 'runs'
    good, rand = ['--data', datasets['good']], ['--random-perceptual']
    args = {
        'missing_data': ['--data', str(tmp_path / 'nope')] + rand,
        'unlabelled': ['--data', datasets['unlabelled']] + rand,
        'resolution': ['--data', datasets['small']] + rand,
        'domain': good + rand + ['--domain', 'nosuch'],
        'no_vgg': good + ['--arcface', 'https://example.invalid/model_ir_se50.pth'],
        'vgg_file': good + ['--vgg', str(tmp_path / 'missing.pth'), '--arcface', 'https://example.invalid/a.pth'],
        'cfg': good + rand + ['--cfg', 'huge'],
        'train_part': good + rand + ['--train', 'backbone.synthesis,nosuch'],
        'finetune_dam': good + rand + ['--method', 'finetune', '--train', 'backbone,dam'],
        'content': good + rand + ['--content', str(tmp_path / 'nope')],
        'modres_finetune': good + rand + ['--method', 'finetune', '--modres-max-res', '0'],
        'modres_resume': good + rand + ['--resume', DEMO_NETWORK, '--modres-max-res', '16'],
        'sr_modres_finetune': good + rand + ['--method', 'finetune', '--sr-modres', '1'],
        'sr_modres_resume': good + rand + ['--resume', DEMO_NETWORK, '--sr-modres', '0'],
    }[case]
    result = _invoke(outdir, *args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith('Error: ')
    assert re.search(expected, result.output), result.output
    assert not outdir.exists()  # nothing was created


def test_presets_fill_defaults_and_command_line_wins(datasets, tmp_path):
    c, desc = build_config(['--outdir', str(tmp_path), '--cfg', 'tiny', '--data', datasets['good'],
                            '--domain', 'synthetic', '--random-perceptual', '--snap', '7'])
    tiny = configs.load_preset('tiny')
    assert c.total_kimg == tiny['options']['kimg'] and c.kimg_per_tick == tiny['options']['tick']
    assert c.network_snapshot_ticks == 7  # given on the command line
    assert c.loss_kwargs == dict(adv_weight=0.7, content_weight=1.0, style_weight=1.0, id_weight=0.5, density_reg=0.1,
                                 geom_weight=0.0, r1_gamma=5.0,
                                 density_reg_points=tiny['training']['density_reg_points'],
                                 neural_rendering_resolution=32, perceptual_resolution=64)
    assert c.G_opt_kwargs['lr'] == 1e-5 and c.D_opt_kwargs['lr'] == 1e-5
    assert c.train_parts == ['backbone.synthesis', 'superresolution', 'dam', 'encoder', 'D']
    assert c.training_set_kwargs.resolution == 128 and c.training_set_kwargs.max_size == 2
    assert desc == 'tiny-good-synthetic-pstyle-gpus1-batch1'


def test_modres_max_res_sets_the_new_dam(datasets, tmp_path):
    base = ['--outdir', str(tmp_path), '--cfg', 'tiny', '--data', datasets['good'], '--domain', 'synthetic',
            '--random-perceptual']
    assert build_config(base)[0].domain_kwargs['modres_max_res'] == 32  # the tiny preset's
    c, _ = build_config(base + ['--modres-max-res', '0'])
    assert c.domain_kwargs == dict(configs.load_preset('tiny').domain_kwargs, modres_max_res=0)
    assert build_config(base)[0].domain_kwargs['sr_modres'] is False  # the tiny preset's
    c, _ = build_config(base + ['--sr-modres', '1'])
    assert c.domain_kwargs == dict(configs.load_preset('tiny').domain_kwargs, sr_modres=True)


def test_perceptual_res_overrides_the_preset(datasets, tmp_path):
    base = ['--outdir', str(tmp_path), '--cfg', 'tiny', '--data', datasets['good'], '--domain', 'synthetic',
            '--random-perceptual']
    assert build_config(base)[0].loss_kwargs['perceptual_resolution'] == 64  # the tiny preset's
    assert build_config(base + ['--perceptual-res', '128'])[0].loss_kwargs['perceptual_resolution'] == 128


def test_dry_run_prints_options_and_creates_nothing(datasets, tmp_path):
    outdir = tmp_path / 'runs'
    result = _invoke(outdir, '--data', datasets['good'], '--random-perceptual', '--dry-run')
    assert result.exit_code == 0, result.output
    assert '"method": "pstyle"' in result.output and 'Dry run; exiting.' in result.output
    assert not outdir.exists()


@pytest.mark.slow
def test_cli_run_folder_with_latent_folder_content(datasets, tmp_path):
    # Content from a folder of projected w+ latents (14 x 512 for this generator) with cameras.
    latents = tmp_path / 'ws'
    latents.mkdir()
    labels = json.load(open(os.path.join(datasets['good'], 'dataset.json')))['labels']
    np.save(latents / 'a.npy', np.random.RandomState(0).randn(14, 512).astype(np.float32))
    (latents / 'dataset.json').write_text(json.dumps({'labels': [['a.npy', labels[0][1]]]}))
    outdir = tmp_path / 'runs'
    for run_id in range(2):
        result = _invoke(outdir, '--data', datasets['good'], '--random-perceptual', '--id-weight', '0',
                         '--content', str(latents))
        assert result.exit_code == 0, result.output
    run_dirs = sorted(os.listdir(outdir))
    assert run_dirs == ['00000-tiny-good-synthetic-pstyle-gpus1-batch1',
                        '00001-tiny-good-synthetic-pstyle-gpus1-batch1']
    files = set(os.listdir(outdir / run_dirs[0]))
    assert {'training_options.json', 'log.txt', 'stats.jsonl', 'fakes_init.png', 'fakes000000.001.png',
            'network-snapshot-000000.001.pkl'} <= files
    options = json.load(open(outdir / run_dirs[0] / 'training_options.json'))
    assert options['content'] == str(latents) and options['total_kimg'] == 0.001
    assert 'tick 0' in (outdir / run_dirs[0] / 'log.txt').read_text()
