"""torch_utils.training_stats: counts, means and stds of reported values, per round and across processes.

Run as a script (`python test_training_stats.py RANK INIT_FILE`) this file is one worker of the
two-process torch.distributed test.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from torch_utils import training_stats


def test_mean_std_num_match_numpy():
    collector = training_stats.Collector(regex='Basic/.*')
    values = [torch.tensor([[0.5, -1.0], [2.0, 3.25]]), np.array([7.0]), 4, [1.5, -2.5]]
    for value in values:
        assert training_stats.report('Basic/loss', value) is value
    training_stats.report('Basic/empty', [])
    training_stats.report('Other/ignored', 1.0)
    collector.update()
    flat = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values])
    assert collector.num('Basic/loss') == 8
    assert collector.mean('Basic/loss') == pytest.approx(flat.mean(), abs=1e-12)
    assert collector['Basic/loss'] == collector.mean('Basic/loss')
    assert collector.std('Basic/loss') == pytest.approx(flat.std(), abs=1e-9)  # population std, as EG3D
    assert collector.names() == ['Basic/loss', 'Basic/empty']
    stats = collector.as_dict()
    assert stats['Basic/loss'].num == 8 and stats['Basic/loss'].std == pytest.approx(flat.std(), abs=1e-9)
    assert stats['Basic/empty'].num == 0 and np.isnan(stats['Basic/empty'].mean) and np.isnan(stats['Basic/empty'].std)
    with pytest.raises(KeyError, match='Other/ignored'):
        collector.mean('Other/ignored')


def test_rounds_and_keep_previous():
    keep = training_stats.Collector(regex='Rounds/.*')
    drop = training_stats.Collector(regex='Rounds/.*', keep_previous=False)
    training_stats.report('Rounds/x', [1.0, 3.0])
    keep.update()
    drop.update()
    assert (keep.num('Rounds/x'), keep.mean('Rounds/x'), keep.std('Rounds/x')) == (2, 2.0, 1.0)
    training_stats.report('Rounds/x', 10.0)
    keep.update()  # only the new value counts in this round
    assert (keep.num('Rounds/x'), keep.mean('Rounds/x'), keep.std('Rounds/x')) == (1, 10.0, 0.0)
    keep.update()  # nothing new: keep_previous retains the last round
    assert keep.mean('Rounds/x') == 10.0
    drop.update()  # this collector saw both reports since its last update, then nothing
    assert (drop.num('Rounds/x'), drop.mean('Rounds/x')) == (1, 10.0)
    drop.update()
    assert drop.num('Rounds/x') == 0 and np.isnan(drop.mean('Rounds/x'))


def test_collector_starts_after_existing_reports():
    training_stats.report('Late/x', 100.0)
    late = training_stats.Collector(regex='Late/.*')
    training_stats.report('Late/x', [2.0, 4.0])
    late.update()
    assert (late.num('Late/x'), late.mean('Late/x')) == (2, 3.0)


def test_report0_and_name_check():
    collector = training_stats.Collector(regex='R0/.*')
    training_stats.report0('R0/x', torch.tensor([5.0, 7.0]))
    collector.update()
    assert (collector.num('R0/x'), collector.mean('R0/x')) == (2, 6.0)
    with pytest.raises(TypeError, match='string'):
        training_stats.report(3, 1.0)
    assert isinstance(training_stats.default_collector, training_stats.Collector)


def test_two_processes_sum_their_statistics(tmp_path):
    init_file = tmp_path / 'dist_init'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get('PYTHONPATH', '')]))
    procs = [subprocess.Popen([sys.executable, __file__, str(rank), str(init_file)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for rank in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    # rank 0 reports [1, 2, 3], rank 1 reports [4, 5]; report0 counts only rank 0's value 10.
    for stats in results:
        assert stats['Dist/x']['num'] == 5 and stats['Dist/x']['mean'] == pytest.approx(3.0)
        assert stats['Dist/x']['std'] == pytest.approx(np.sqrt(2.0))
        assert stats['Dist/only0'] == {'num': 1, 'mean': 10.0, 'std': 0.0}


def _worker(rank: int, init_file: str) -> None:
    torch.distributed.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=2)
    training_stats.init_multiprocessing(rank=rank, sync_device=torch.device('cpu'))
    collector = training_stats.Collector(regex='Dist/.*')
    training_stats.report('Dist/x', [1.0, 2.0, 3.0] if rank == 0 else [4.0, 5.0])
    training_stats.report0('Dist/only0', 10.0 + rank)
    collector.update()
    print(json.dumps(collector.as_dict()))
    torch.distributed.destroy_process_group()


if __name__ == '__main__':
    _worker(int(sys.argv[1]), sys.argv[2])
