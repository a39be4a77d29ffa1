"""train.py and calc_metrics.py under torchrun (env:// rendezvous): 2 gloo processes on the CPU."""

import json
import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

import calc_metrics
import legacy
import train
from tests.helpers_train import make_style_dataset
from torch_utils import distributed

pytestmark = pytest.mark.slow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _torchrun(script: str, *args, env: dict = None) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --nproc_per_node=2 --standalone script args` on one CPU thread each."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1', **(env or {}))
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        env.pop(name, None)
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--standalone', script, *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_train_under_torchrun_one_run_folder_written_by_rank_0_and_equal_weights(tmp_path):
    data = make_style_dataset(str(tmp_path / 'style'), count=2)
    outdir, weights = tmp_path / 'runs', tmp_path / 'weights'
    weights.mkdir()
    # One iteration of batch 2 (one exemplar per rank), a snapshot at its end.
    done = _torchrun('tests/helpers_torchrun.py', str(weights), '--outdir', str(outdir), '--cfg', 'tiny',
                     '--data', data, '--domain', 'synthetic', '--random-perceptual', '--id-weight', '0',
                     '--gpus', '2', '--batch', '2', '--kimg', '0.002', '--workers', '0')
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.listdir(outdir) == ['00000-tiny-style-synthetic-pstyle-gpus2-batch2']
    run_dir = outdir / os.listdir(outdir)[0]
    files = sorted(os.listdir(run_dir))
    assert [f for f in files if f.startswith('network-snapshot-')] == ['network-snapshot-000000.002.pkl']
    assert not [f for f in files if f.startswith('tmp') or f.endswith('.tmp')], files
    assert done.stdout.count('Output folder:') == 1 and done.stdout.count('Training options:') == 1
    log = (run_dir / 'log.txt').read_text()
    assert log.count('tick 0') == 1 and log.count('Exiting...') == 1
    assert len((run_dir / 'stats.jsonl').read_text().splitlines()) == 1
    options = json.loads((run_dir / 'training_options.json').read_text())
    assert options['num_gpus'] == 2 and options['run_dir'] == str(run_dir)

    rank0 = torch.load(weights / 'rank0.pt', weights_only=True)
    rank1 = torch.load(weights / 'rank1.pt', weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], atol=0, rtol=0, msg=lambda m: f'{key}: {m}')
    # Rank 0's snapshot holds those weights, and the step moved the trained ones away from the source's.
    with open(run_dir / 'network-snapshot-000000.002.pkl', 'rb') as f:
        snapshot = legacy.load_network_pkl(f)
    trained, source = snapshot['G'].state_dict(), snapshot['G_src'].state_dict()
    assert all(torch.equal(trained[key[2:]], value) for key, value in rank0.items() if key.startswith('G.'))
    assert any(not torch.equal(trained[key], source[key]) for key in source if key.startswith('backbone.synthesis.'))


def test_calc_metrics_under_torchrun_equals_one_process(heads, inception_file, tmp_path, monkeypatch):
    common = ['--metrics=kid50k_full', f'--data={heads["natural"]}', f'--images={heads["toon_dir"]}',
              f'--inception={inception_file}', '--device=cpu', '--no-progress', '--batch=3']
    monkeypatch.setenv('PSTYLE3D_CACHE_DIR', str(tmp_path / 'cache1'))
    single = CliRunner().invoke(calc_metrics.main, [*common, f'--outdir={tmp_path / "one"}'])
    assert single.exit_code == 0, single.output
    done = _torchrun('calc_metrics.py', *common, '--gpus=2', f'--outdir={tmp_path / "two"}',
                     env=dict(PSTYLE3D_CACHE_DIR=str(tmp_path / 'cache2')))
    assert done.returncode == 0, done.stdout + done.stderr
    one = json.loads((tmp_path / 'one' / 'metric-kid50k_full.jsonl').read_text())
    lines = (tmp_path / 'two' / 'metric-kid50k_full.jsonl').read_text().splitlines()
    assert len(lines) == 1 and len([x for x in done.stdout.splitlines() if x.startswith('{')]) == 1  # rank 0 alone
    two = json.loads(lines[0])
    assert two['num_gpus'] == 2 and two['num_images'] == one['num_images'] == dict(real=4, gen=4)
    # float32 features from other batch splits and thread counts round differently (4e-8 relative seen)
    assert two['results']['kid50k_full'] == pytest.approx(one['results']['kid50k_full'], rel=1e-6)
    assert len(os.listdir(tmp_path / 'cache2' / 'gan-metrics')) == 1  # rank 0 cached the real statistics


@pytest.mark.parametrize('script', ['train', 'calc_metrics'])
def test_gpus_must_count_torchrun_processes(script, heads, tmp_path, monkeypatch):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_RANK', '0')
    data = make_style_dataset(str(tmp_path / 'style'), count=2)
    if script == 'train':
        args = ['--outdir', str(tmp_path / 'runs'), '--cfg', 'tiny', '--data', data, '--domain', 'synthetic',
                '--random-perceptual', '--gpus', '1', '--dry-run']
        result = CliRunner().invoke(train.main, args)
    else:
        result = CliRunner().invoke(calc_metrics.main, ['--images', heads['toon_dir'], '--data', heads['natural'],
                                                        '--device=cpu'])
    assert result.exit_code != 0
    assert 'asked for, but torchrun started 2 (WORLD_SIZE, all machines together); pass --gpus=2' in result.output
    assert 'Traceback' not in result.output and not (tmp_path / 'runs').exists()


def _agree_worker(rank: int, device: torch.device, out_dir: str) -> None:
    answers = dict(all_true=distributed.all_true(rank == 0, 2), all_true_both=distributed.all_true(True, 2),
                   broadcast=distributed.broadcast_object(f'from rank {rank}', 2), device=str(device),
                   threads=torch.get_num_threads())
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w', encoding='utf-8') as f:
        json.dump(answers, f)


def test_spawned_processes_agree_on_rank_0s_objects_and_on_cache_hits(tmp_path):
    # A statistics cache seen by one process only (another machine's disk, or a file rank 0 is still
    # writing) must make both recompute: all_true is False on every rank.
    distributed.launch(_agree_worker, 2, args=(str(tmp_path),), use_cuda=False)
    for rank in (0, 1):
        answers = json.loads((tmp_path / f'rank{rank}.json').read_text())
        assert answers == dict(all_true=False, all_true_both=True, broadcast='from rank 0', device='cpu',
                               threads=max(1, torch.get_num_threads() // 2))
