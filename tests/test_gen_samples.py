"""gen_samples.py: file names, argument errors, and the CLI on a tiny network snapshot."""

import pytest
from click.testing import CliRunner

import gen_samples


def test_sample_name():
    assert gen_samples.sample_name(3, 0.5, 0.4, -0.1) == 'seed0003_alpha0.50_yaw+0.40_pitch-0.10'
    assert gen_samples.sample_name(12, None, 0.0, 0.0) == 'seed0012_yaw+0.00_pitch+0.00'


@pytest.mark.parametrize('args, message', [
    (['--seeds=0-x'], "Invalid value for '--seeds': \"0-x\" in \"0-x\" is not a seed"),
    (['--alpha=0,strong'], "Invalid value for '--alpha': \"strong\" in \"0,strong\" is not a number"),
    (['--views=0:0,left'], "Invalid value for '--views': \"left\" is not a yaw:pitch pair"),
    (['--network=missing.pkl'], "Invalid value for '--network': network pickle \"missing.pkl\" does not exist"),
])
def test_bad_arguments_name_the_problem(tmp_path, args, message):
    result = CliRunner().invoke(gen_samples.generate_images, [f'--outdir={tmp_path}', '--device=cpu', *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
