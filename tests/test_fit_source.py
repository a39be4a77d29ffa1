"""fit_source.py: the demo's reconstruction fit, and the export of its natural source for train.py."""

import re

import pytest
import torch
from click.testing import CliRunner

import fit_source
import legacy
from camera_utils import camera_label
from training.source_fit import DEMO_DOMAIN

pytestmark = pytest.mark.usefixtures('single_cpu_thread')

TINY = ['--heads', '1', '--views', '1', '--resolution', '32', '--batch', '1', '--threads', '1']


def _fit(*args):
    return CliRunner().invoke(fit_source.main, TINY + list(args))


@pytest.fixture(scope='module')
def fitted(tmp_path_factory):
    path = tmp_path_factory.mktemp('fit') / 'dam.pkl'
    result = _fit('--out', str(path), '--iterations', '2', '--style-from', '1')
    assert result.exit_code == 0, result.output
    return path


def _render(G, **domain):
    c = camera_label(0.2)
    with torch.no_grad():
        ws = G.mapping(torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(0)), c)
        torch.manual_seed(1)
        return G.synthesis(ws, c, noise_mode='const', **domain)['image']


def test_source_only_export_is_the_plain_generator_at_alpha_zero(fitted, tmp_path):
    out = tmp_path / 'source.pkl'
    result = _fit('--out', str(out), '--resume', str(fitted), '--iterations', '0', '--source-only')
    assert result.exit_code == 0, result.output
    assert '"toon"' not in result.output  # no style losses are reported for a source-only network
    G_dam = legacy.load_network_pkl(str(fitted))['G_ema']
    G_src = legacy.load_network_pkl(str(out))['G_ema']
    assert G_dam.domain_names == [DEMO_DOMAIN] and G_src.domain_kwargs is None
    assert set(G_src.state_dict()) < set(G_dam.state_dict())
    torch.testing.assert_close(_render(G_src), _render(G_dam, domain=DEMO_DOMAIN, alpha=0), rtol=0, atol=0)
    assert (_render(G_dam, domain=DEMO_DOMAIN, alpha=1) - _render(G_src)).abs().max() > 0  # the style was dropped


def test_a_source_only_pickle_continues_with_source_only(fitted, tmp_path):
    plain, again, more = tmp_path / 'plain.pkl', tmp_path / 'again.pkl', tmp_path / 'more.pkl'
    assert _fit('--out', str(plain), '--resume', str(fitted), '--iterations', '0', '--source-only').exit_code == 0
    result = _fit('--out', str(again), '--resume', str(plain), '--iterations', '0', '--source-only')
    assert result.exit_code == 0, result.output
    G_plain, G_again = (legacy.load_network_pkl(str(p))['G_ema'] for p in (plain, again))
    assert G_again.domain_kwargs is None
    torch.testing.assert_close(_render(G_again), _render(G_plain), rtol=0, atol=0)
    result = _fit('--out', str(more), '--resume', str(plain), '--iterations', '1', '--source-only')
    assert result.exit_code == 0, result.output
    assert (_render(legacy.load_network_pkl(str(more))['G_ema']) - _render(G_plain)).abs().max() > 0


@pytest.mark.parametrize('case, expected', [
    ('no_resume', r"--iterations.*0 iterations only re-export a network: pass --resume"),
    ('plain_resume', r'has no domain path .*continue it with --source-only'),
])
def test_bad_options(fitted, tmp_path, case, expected):
    out = tmp_path / 'out.pkl'
    if case == 'no_resume':
        result = _fit('--out', str(out), '--iterations', '0')
    else:
        plain = tmp_path / 'plain.pkl'
        assert _fit('--out', str(plain), '--resume', str(fitted), '--iterations', '0', '--source-only').exit_code == 0
        result = _fit('--out', str(out), '--resume', str(plain), '--iterations', '1')
    assert result.exit_code == 2, result.output
    assert re.search(expected, result.output), result.output


@pytest.mark.parametrize('value', ['0', '1.5', 'nan'])
def test_trunc_out_of_range_is_refused(tmp_path, value):
    result = _fit('--out', str(tmp_path / 'out.pkl'), '--iterations', '1', '--trunc', value)
    assert result.exit_code == 2 and "--trunc" in result.output, result.output
    assert not (tmp_path / 'out.pkl').exists()
