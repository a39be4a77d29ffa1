"""dataset_tool.py with bad and edge inputs: one-line errors, inputs byte-identical, no partial datasets."""

import json
import os
import zipfile

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

import dataset_tool
from tests.cli_checks import assert_done_or_one_error, assert_one_line_error, random_args, tree_digest


def _images(folder, sizes=(16, 16, 16), seed=0):
    """Square random images of the given sizes in `folder`, named img_k.png."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(seed)
    for k, size in enumerate(sizes):
        PIL.Image.fromarray(rng.randint(0, 256, (size, size, 3), dtype=np.uint8)).save(
            os.path.join(folder, f'img_{k}.png'))
    return str(folder)


def _run(*args):
    return CliRunner().invoke(dataset_tool.convert_dataset, [str(a) for a in args])


@pytest.mark.parametrize('dest', ['parent', 'source', 'inside'])
def test_overwrite_never_touches_the_source_or_its_folder(tmp_path, dest):
    root = tmp_path / 'D'
    source = _images(root / 'raw')
    (root / 'notes.txt').write_text('mine')
    before = tree_digest(tmp_path)
    dest = {'parent': root, 'source': root / 'raw', 'inside': root / 'raw' / 'out.zip'}[dest]
    result = _run('--source', source, '--dest', dest, '--overwrite')
    assert_one_line_error(result, r'--dest .* is, holds or lies inside the input .*raw; '
                                  r'write the output somewhere else')
    assert tree_digest(tmp_path) == before


def test_labels_file_inside_dest_is_a_source(tmp_path):
    source = _images(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'dataset.json').write_text('{"labels": null}')
    (out / 'cams.json').write_text(json.dumps({f'img_{k}.png': [0.0] * 25 for k in range(3)}))
    before = tree_digest(tmp_path)
    result = _run('--source', source, '--dest', out, '--labels', out / 'cams.json', '--overwrite')
    assert_one_line_error(result, r'lies inside the input .*cams.json')
    assert tree_digest(tmp_path) == before


def test_existing_dest_needs_overwrite_and_overwrite_replaces_only_a_dataset(tmp_path):
    source = _images(tmp_path / 'src')
    (tmp_path / 'old.zip').write_bytes(b'old dataset')
    home = tmp_path / 'home'
    home.mkdir()
    (home / 'thesis.tex').write_text('precious')
    before = tree_digest(tmp_path)
    assert_one_line_error(_run('--source', source, '--dest', tmp_path / 'old.zip'),
                          r'old.zip already exists; pass --overwrite to replace it')
    assert_one_line_error(_run('--source', source, '--dest', home, '--overwrite'),
                          r'home exists and is not a dataset folder \(no dataset.json\); choose a new --dest')
    assert_one_line_error(_run('--source', source, '--dest', tmp_path / 'src.zip', '--dry-run', '--overwrite',
                               '--resolution', '0'), r"--resolution")
    assert tree_digest(tmp_path) == before
    result = _run('--source', source, '--dest', tmp_path / 'old.zip', '--overwrite')
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / 'old.zip') as zf:
        assert len(zf.namelist()) == 4
    assert sorted(os.listdir(tmp_path)) == ['home', 'old.zip', 'src']  # no temporary left behind


@pytest.mark.parametrize('dest_name', ['new.zip', 'newdir'])
def test_interrupted_run_leaves_the_old_dataset_byte_identical(tmp_path, monkeypatch, dest_name):
    source = _images(tmp_path / 'src', sizes=(16,) * 5)
    dest = tmp_path / dest_name
    assert _run('--source', source, '--dest', dest, '--max-images', '2').exit_code == 0
    before = tree_digest(tmp_path)
    calls = []

    def interrupted(image, compress_level):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return b'png'

    monkeypatch.setattr(dataset_tool.image_io, 'png_bytes', interrupted)
    CliRunner().invoke(dataset_tool.convert_dataset, ['--source', source, '--dest', str(dest), '--overwrite'])
    assert len(calls) == 3
    assert tree_digest(tmp_path) == before  # the old dataset is whole, and no partial file or folder is left


def test_every_image_skipped_writes_nothing(tmp_path):
    source = tmp_path / 'src'
    source.mkdir()
    (source / 'a.png').write_bytes(b'not a png')
    PIL.Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(source / 'wide.png')
    (tmp_path / 'old.zip').write_bytes(b'old dataset')
    before = tree_digest(tmp_path)
    result = _run('--source', source, '--dest', tmp_path / 'old.zip', '--overwrite')
    assert_one_line_error(result, r'every image was skipped .*nothing was written and the old --dest is unchanged')
    assert tree_digest(tmp_path) == before


def test_mixed_sizes_without_resolution_stop_the_run(tmp_path):
    source = _images(tmp_path / 'src', sizes=(32, 48, 32))
    result = _run('--source', source, '--dest', tmp_path / 'out.zip')
    assert_one_line_error(result, r'"img_1.png" becomes 48x48 but earlier images 32x32: .*pass --resolution')
    assert sorted(os.listdir(tmp_path)) == ['src']
    assert _run('--source', source, '--dest', tmp_path / 'out.zip', '--resolution', '32').exit_code == 0


def test_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    _images(tmp_path / 'raw')
    result = _run('--source=~/raw', '--dest=~/datasets/raw16.zip', '--labels=~/missing.csv')
    assert_one_line_error(result, r'--labels .*/missing.csv')
    assert not os.path.exists(tmp_path / '~')
    result = _run('--source=~/raw', '--dest=~/datasets/raw16.zip')
    assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(tmp_path / 'datasets' / 'raw16.zip')


@pytest.mark.parametrize('args, pattern', [
    (['--source', '{tmp}/nope'], r'--source must be a folder or a .zip file'),
    (['--source', '{tmp}/bad.zip'], r'--source .*bad.zip is not a valid zip file'),
    (['--dest', '{tmp}/file.txt/sub.zip'], r'--dest: .*file.txt is a file, not a folder'),
    (['--labels', '{tmp}/labels.txt'], r'--labels .*: the label file must end in .json or .csv'),
    (['--labels', '{tmp}/nan.json'], r'the label of "img_0.png" is not a usable camera: it has non-finite numbers'),
])
def test_bad_inputs_name_the_problem(tmp_path, args, pattern):
    _images(tmp_path / 'src')
    (tmp_path / 'bad.zip').write_bytes(b'PK not really')
    (tmp_path / 'file.txt').write_text('x')
    (tmp_path / 'labels.txt').write_text('x')
    (tmp_path / 'nan.json').write_text(json.dumps({f'img_{k}.png': [float('nan')] * 25 for k in range(3)}))
    base = {'--source': str(tmp_path / 'src'), '--dest': str(tmp_path / 'out.zip')}
    args = [a.replace('{tmp}', str(tmp_path)) for a in args]
    base.update(dict(zip(args[::2], args[1::2])))
    before = tree_digest(tmp_path)
    assert_one_line_error(_run(*[x for kv in base.items() for x in kv]), pattern)
    assert tree_digest(tmp_path) == before


def test_random_option_sweep_gives_a_dataset_or_one_line_error(tmp_path):
    source = _images(tmp_path / 'src', sizes=(16, 24, 16))
    rng = np.random.RandomState(0)
    choices = {'--resolution': ['8', '16x16', '16x8', '0', 'abc', '-4', None],
               '--transform': ['none', 'center-crop', 'center-crop-wide', 'bogus', None],
               '--max-images': ['1', '3', '0', 'x', None], '--mirror': [True, None], '--overwrite': [True, None]}
    before = tree_digest(source)
    for trial in range(12):
        args = ['--source', source, '--dest', str(tmp_path / f'out{trial % 3}.zip')] + random_args(rng, choices)
        if assert_done_or_one_error(CliRunner().invoke(dataset_tool.convert_dataset, args), args):
            with zipfile.ZipFile(args[3]) as zf:
                assert 'dataset.json' in zf.namelist()
        assert tree_digest(source) == before
    assert not [name for name in os.listdir(tmp_path) if name.startswith('.')]


def test_sixteen_bit_float_and_alpha_sources_are_scaled_not_clipped(tmp_path):
    """PIL's convert('RGB') made 16-bit grey almost white and 0-1 float TIFFs black; alpha was dropped."""
    source = tmp_path / 'src'
    source.mkdir()
    PIL.Image.fromarray(np.full((8, 8), 257 * 40, dtype=np.uint16)).save(source / 'a16.png')
    PIL.Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(source / 'b_float.tif')
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 0  # transparent black: composited over white
    PIL.Image.fromarray(rgba, 'RGBA').save(source / 'c_alpha.png')
    result = _run('--source', source, '--dest', tmp_path / 'out.zip')
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / 'out.zip') as zf:
        values = [np.asarray(PIL.Image.open(zf.open(f'00000/img{k:08d}.png'))) for k in range(3)]
    assert all(v.shape == (8, 8, 3) for v in values)
    assert np.all(values[0] == 40) and np.all(values[1] == 128) and np.all(values[2] == 255)
