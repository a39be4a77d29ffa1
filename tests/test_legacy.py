"""legacy.load_network_pkl: network pickles load into this project's classes and never run code from the file."""

import copy
import importlib
import io
import os
import pickle
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import dnnlib
import legacy
from tests.eg3d_fixtures import FIXTURES, build_with_state, load_tiny_config
from torch_utils import persistence
from torch_utils import safe_pickle
from training import domain_adaptation, network_pickle
from training.dam_layers import ModRes


@persistence.persistent_class
class LegacyTinyLayer(torch.nn.Module):
    """y = softplus(x @ weight.T * weight_gain + bias); weight_gain is a numpy float as in EG3D."""

    def __init__(self, in_features, out_features, lr_multiplier=1.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]))
        self.bias = torch.nn.Parameter(torch.randn([out_features]))
        self.weight_gain = lr_multiplier / np.sqrt(in_features)

    def forward(self, x):
        return x @ (self.weight * self.weight_gain).t() + self.bias


@persistence.persistent_class
class LegacyTinyNet(torch.nn.Module):
    """A persistent network with a plain Sequential/Softplus, a buffer and a mutable plain attribute."""

    def __init__(self, width, mapping_kwargs={}, rendering_kwargs={}):
        super().__init__()
        self.net = torch.nn.Sequential(LegacyTinyLayer(width, width, **mapping_kwargs), torch.nn.Softplus())
        self.out = LegacyTinyLayer(width, 2)
        self.register_buffer('w_avg', torch.zeros([width]))
        self.register_buffer('scratch', torch.zeros([1]), persistent=False)
        self.rendering_kwargs = rendering_kwargs
        self.neural_rendering_resolution = 64

    def forward(self, x):
        return self.out(self.net(x - self.w_avg)) * self.neural_rendering_resolution


class _Forged:
    """Pickles as an arbitrary call `func(*args)`: what a hostile or foreign file can contain."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _tiny_snapshot(seed=0):
    torch.manual_seed(seed)
    kwargs = dict(mapping_kwargs=dnnlib.EasyDict(lr_multiplier=0.5), rendering_kwargs={'box_warp': 1})
    G = LegacyTinyNet(4, **kwargs)
    D = LegacyTinyNet(4)
    with torch.no_grad():
        G.w_avg.copy_(torch.randn(4))
    G.neural_rendering_resolution = 32  # changed after construction, as EG3D's training loop does
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    G(torch.randn(2, 4)).sum().backward()
    opt.step()
    resume_state = dict(opt_G=opt.state_dict(), cur_nimg=np.int64(12000), rng=torch.get_rng_state(),
                        np_rng=np.random.RandomState(0).get_state())
    return dict(G=G, D=D, G_ema=G_ema, training_set_kwargs=dnnlib.EasyDict(path='ffhq.zip', use_labels=True),
                augment_pipe=None, resume_state=resume_state)


@pytest.mark.parametrize('inference_only', [False, True])
def test_convert_network_pickle(tmp_path, inference_only):
    snap = _tiny_snapshot()
    source, dest = tmp_path / 'snapshot.pkl', tmp_path / 'out' / 'converted.pkl'
    source.write_bytes(pickle.dumps(snap))
    dest.parent.mkdir()
    args = ['--source', str(source), '--dest', str(dest)] + (['--inference-only'] if inference_only else [])
    result = CliRunner().invoke(legacy.convert_network_pickle, args)
    assert result.exit_code == 0, result.output
    assert os.listdir(dest.parent) == ['converted.pkl']  # written atomically, no temporary left
    data = legacy.load_network_pkl(str(dest))
    x = torch.randn(3, 4)
    assert torch.equal(data['G_ema'](x), snap['G_ema'](x)) and torch.equal(data['D'](x), snap['D'](x))
    if inference_only:
        assert sorted(data) == ['D', 'G', 'G_ema', 'augment_pipe', 'training_set_kwargs']
        assert torch.equal(data['G'](x), snap['G_ema'](x))
    else:
        assert data['resume_state']['cur_nimg'] == 12000 and torch.equal(data['G'](x), snap['G'](x))


def _convert(tmp_path, snap, *options):
    source, dest = tmp_path / 'snapshot.pkl', tmp_path / f'converted{len(options)}.pkl'
    source.write_bytes(pickle.dumps(snap))
    args = ['--source', str(source), '--dest', str(dest), *options]
    return CliRunner().invoke(legacy.convert_network_pickle, args), dest


def test_half_storage_halves_the_file_and_loads_float32_weights_rounded_to_float16(tmp_path):
    torch.manual_seed(0)
    snap = dict(G=LegacyTinyNet(128), G_ema=LegacyTinyNet(128), D=LegacyTinyNet(128), training_set_kwargs=None,
                augment_pipe=None)
    full, full_path = _convert(tmp_path, snap, '--inference-only')
    half, half_path = _convert(tmp_path, snap, '--inference-only', '--half-storage')
    assert full.exit_code == 0 and half.exit_code == 0, full.output + half.output
    numel = sum(t.numel() for key in ('G_ema', 'D') for t in snap[key].state_dict().values())
    assert full_path.stat().st_size - half_path.stat().st_size == pytest.approx(2 * numel, rel=0.02)  # 2 bytes each
    data = legacy.load_network_pkl(str(half_path))
    for key in ('G_ema', 'D'):
        expected = snap[key].state_dict()
        for name, tensor in data[key].state_dict().items():
            assert tensor.dtype == torch.float32 and torch.equal(tensor, expected[name].half().float()), name
    x = torch.randn(3, 128)
    assert (data['G_ema'](x) - snap['G_ema'](x)).abs().max() < 1e-2 * snap['G_ema'](x).abs().max()
    assert snap['G_ema'].out.weight.dtype == torch.float32  # the source networks are not changed


def test_half_storage_refuses_training_snapshots_and_values_beyond_float16(tmp_path):
    snap = _tiny_snapshot()
    result, dest = _convert(tmp_path, snap, '--half-storage')
    assert result.exit_code != 0 and '--half-storage needs --inference-only' in result.output and not dest.exists()
    with torch.no_grad():
        snap['G_ema'].w_avg[0] = 1e5
    result, dest = _convert(tmp_path, snap, '--inference-only', '--half-storage')
    assert result.exit_code != 0 and not dest.exists()
    assert "--half-storage: G_ema.w_avg has values beyond float16's range" in result.output


def _load(obj_or_bytes, **kwargs):
    data = obj_or_bytes if isinstance(obj_or_bytes, bytes) else pickle.dumps(obj_or_bytes)
    return legacy.load_network_pkl(io.BytesIO(data), **kwargs)


def _raw_global_pickle(qualified_name):
    """Protocol-0 pickle that calls `qualified_name()`; the global is looked up before anything runs."""
    module, _, name = qualified_name.rpartition('.')
    return f'c{module}\n{name}\n(tR.'.encode()


def test_round_trip_gives_identical_networks():
    snap = _tiny_snapshot()
    data = _load(snap)
    x = torch.randn(3, 4)
    for key in ('G', 'D', 'G_ema'):
        net = data[key]
        assert type(net) is LegacyTinyNet and net is not snap[key]
        assert torch.equal(net(x), snap[key](x))
        assert net.init_kwargs == snap[key].init_kwargs
        assert net.training == snap[key].training
        assert [p.requires_grad for p in net.parameters()] == [p.requires_grad for p in snap[key].parameters()]
    assert data['G'].neural_rendering_resolution == 32 and data['G'].rendering_kwargs == {'box_warp': 1}
    assert isinstance(data['G'].init_kwargs.mapping_kwargs, dnnlib.EasyDict)
    assert float(data['G'].net[0].weight_gain) == 0.5 / 2
    assert data['training_set_kwargs'] == {'path': 'ffhq.zip', 'use_labels': True} and data['augment_pipe'] is None
    resume, expected = data['resume_state'], snap['resume_state']
    assert resume['cur_nimg'] == 12000 and torch.equal(resume['rng'], expected['rng'])
    assert resume['np_rng'][0] == 'MT19937' and np.array_equal(resume['np_rng'][1], expected['np_rng'][1])
    assert resume['opt_G']['param_groups'] == expected['opt_G']['param_groups']
    for idx, slots in expected['opt_G']['state'].items():
        assert all(torch.equal(resume['opt_G']['state'][idx][k], v) for k, v in slots.items())


def test_accepts_path_and_defaults_missing_optional_keys(tmp_path):
    snap = _tiny_snapshot()
    del snap['training_set_kwargs'], snap['augment_pipe']
    path = tmp_path / 'net.pkl'
    path.write_bytes(pickle.dumps(snap))
    data = legacy.load_network_pkl(str(path))
    assert data['training_set_kwargs'] is None and data['augment_pipe'] is None


def _eg3d_meta(net, module_src):
    """`meta` exactly as EG3D's persistence writes it, but with a foreign `module_src`."""
    return dict(type='class', version=6, module_src=module_src, class_name=type(net).__name__,
                state=dict(net.__dict__))


def test_eg3d_layout_with_foreign_source_loads_without_running_it(tmp_path):
    marker = tmp_path / 'pwned'
    evil_src = f'open({str(marker)!r}, "w").write("ran")\nclass LegacyTinyNet:\n    pass\n'
    snap = _tiny_snapshot()
    inner = [_Forged(persistence._reconstruct_persistent_obj, _eg3d_meta(layer, evil_src))
             for layer in (snap['G'].net[0], snap['G'].out)]
    state = dict(snap['G'].__dict__)
    state['_modules'] = dict(net=torch.nn.Sequential(), out=inner[1])
    state['_modules']['net'].__dict__['_modules'] = {'0': inner[0], '1': torch.nn.Softplus()}
    meta = dict(type='class', version=6, module_src=evil_src, class_name='LegacyTinyNet', state=state)
    G = _Forged(persistence._reconstruct_persistent_obj, meta)
    data = _load(dict(G=G, D=G, G_ema=G))
    x = torch.randn(2, 4)
    assert type(data['G']) is LegacyTinyNet and torch.equal(data['G'](x), snap['G'](x))
    assert not marker.exists()


def test_class_name_disambiguated_by_module_source(tmp_path, monkeypatch):
    # A second module of "ours" defining a persistent class with the same name.
    (tmp_path / 'legacy_twin_module.py').write_text(
        'import torch\nfrom torch_utils import persistence\n\n'
        '@persistence.persistent_class\nclass LegacyTinyLayer(torch.nn.Module):\n'
        '    def __init__(self, in_features, out_features, lr_multiplier=1.0):\n'
        '        super().__init__()\n'
        '        self.weight = torch.nn.Parameter(torch.ones([out_features, in_features]))\n\n'
        'class TwinOnlyHelper:\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    twin = importlib.import_module('legacy_twin_module')
    try:
        layer = LegacyTinyLayer(3, 2)
        for src, expected in [('class LegacyTinyLayer:\n    pass\nclass LegacyTinyNet:\n    pass\n', LegacyTinyLayer),
                              ('class LegacyTinyLayer:\n    pass\nclass TwinOnlyHelper:\n    pass\n',
                               twin.LegacyTinyLayer)]:
            record = safe_pickle.PersistentRecord(_eg3d_meta(layer, src))
            assert network_pickle.resolve_class(record, 'G') is expected
    finally:
        persistence._decorators.discard(twin.LegacyTinyLayer)
        sys.modules.pop('legacy_twin_module')


@pytest.mark.parametrize('name', ['os.system', 'posix.system', 'builtins.eval', 'builtins.exec', 'builtins.getattr',
                                  'builtins.__import__', 'subprocess.Popen', 'torch.load', 'copyreg._reconstructor',
                                  'torch._utils._rebuild_tensor', 'pickle.loads'])
def test_dangerous_globals_are_refused_by_name(name):
    with pytest.raises(legacy.NetworkPickleError, match=f'refusing to load global {name}( \\(os.system\\))? from'):
        _load(_raw_global_pickle(name))


def test_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / 'x'
    snap = _tiny_snapshot()
    snap['training_set_kwargs'] = _Forged(os.system, f'touch {marker}')
    with pytest.raises(pickle.UnpicklingError,
                       match=r'refusing to load global (posix|nt)\.system \(os\.system\)') as info:
        _load(snap)
    assert 'network pickle' in str(info.value)
    assert not marker.exists()


def test_storage_bytes_are_read_weights_only(tmp_path):
    marker = tmp_path / 'x'
    buf = io.BytesIO()
    torch.save(_Forged(os.system, f'touch {marker}'), buf)
    evil = _Forged(torch.storage._load_from_bytes, buf.getvalue())
    with pytest.raises(legacy.NetworkPickleError, match='more than a plain storage'):
        _load(dict(G=evil, D=None, G_ema=None))
    assert not marker.exists()


def test_truncated_file_gives_clear_error(tmp_path):
    path = tmp_path / 'network-snapshot-000123.pkl'
    data = pickle.dumps(_tiny_snapshot())
    for cut in (len(data) // 2, len(data) - 1, 5):
        path.write_bytes(data[:cut])
        with open(path, 'rb') as f, pytest.raises(pickle.UnpicklingError, match='truncated or corrupt') as info:
            legacy.load_network_pkl(f)
        assert str(path) in str(info.value)


def test_unknown_class_lists_known_ones():
    meta = _eg3d_meta(LegacyTinyLayer(2, 2), 'class NoSuchNet:\n    pass\n')
    meta['class_name'] = 'NoSuchNet'
    G = _Forged(persistence._reconstruct_persistent_obj, meta)
    with pytest.raises(ValueError, match='no persistent class "NoSuchNet".*known classes:.*LegacyTinyNet'):
        _load(dict(G=G, D=G, G_ema=G))


def test_tensor_mismatches_name_the_key():
    snap = _tiny_snapshot()
    bad = LegacyTinyNet(4)
    bad.out.bias = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match=r'"out.bias" has shape \(3,\) in the file but \(2,\)'):
        _load(dict(snap, G=bad))
    extra = LegacyTinyNet(4)
    extra.register_buffer('mystery', torch.zeros(2))
    with pytest.raises(ValueError, match='"mystery"'):
        _load(dict(snap, D=extra))


def test_missing_tensors_keep_initial_values_with_a_warning():
    snap = _tiny_snapshot()
    del snap['G']._buffers['w_avg']
    with pytest.warns(UserWarning, match='1 tensor.*w_avg'):
        data = _load(snap)
    assert torch.equal(data['G'].w_avg, torch.zeros(4))


def test_class_names_in_init_kwargs_are_checked():
    snap = _tiny_snapshot()
    snap['G']._init_kwargs['rendering_kwargs'] = {'superresolution_module': 'os.system'}
    with pytest.raises(ValueError, match="superresolution_module.*os.system.*not a persistent class"):
        _load(snap)


def test_not_a_network_dict():
    with pytest.raises(ValueError, match=r"keys \['G', 'D', 'G_ema'\]; found \['G'\]"):
        _load({'G': 1})
    with pytest.raises(ValueError, match='TensorFlow'):
        _load((1, 2, 3))
    snap = _tiny_snapshot()
    with pytest.raises(ValueError, match='plain torch.nn.modules.activation.Softplus'):
        _load(dict(snap, D=torch.nn.Softplus()))


def test_torch_save_archive_is_recognised():
    buf = io.BytesIO()
    torch.save({'G': torch.zeros(2)}, buf)
    with pytest.raises(legacy.NetworkPickleError, match='zip archive'):
        legacy.load_network_pkl(io.BytesIO(buf.getvalue()))


# ---------------------------------------------------------------------------------------------
# The tiny EG3D generator and discriminator of tests/fixtures/eg3d (weights from the fixtures).

def _tiny_eg3d_networks():
    """G (neural rendering 32, as EG3D's loop leaves it) and D built from tiny_config.json with the fixture weights."""
    cfg = load_tiny_config()
    G = build_with_state(cfg['G_kwargs'], 'tiny_G_state.npz')
    G.neural_rendering_resolution = cfg['neural_rendering_resolution']
    return G, build_with_state(cfg['D_kwargs'], 'tiny_D_state.npz')


class _EG3DPickler(pickle.Pickler):
    """Writes persistent objects the way EG3D's own persistence does, but with foreign module sources."""

    def __init__(self, file, fake_sources):
        super().__init__(file)
        self.fake_sources = fake_sources

    def reducer_override(self, obj):
        if not persistence.is_persistent(obj):
            return NotImplemented
        meta = dict(type='class', version=6, module_src=self.fake_sources[type(obj).__module__],
                    class_name=type(obj).__name__, state=dict(obj.__dict__))
        return persistence._reconstruct_persistent_obj, (meta,)


def test_tiny_eg3d_round_trip_gives_identical_outputs():
    G, D = _tiny_eg3d_networks()
    io_ref = np.load(FIXTURES / 'tiny_io.npz', allow_pickle=False)
    z, c = torch.from_numpy(io_ref['z'][:1]), torch.from_numpy(io_ref['c'][:1])
    data = _load(dict(G=G, D=D, G_ema=copy.deepcopy(G), training_set_kwargs=None, augment_pipe=None))
    assert type(data['G']) is type(G) and type(data['D']) is type(D)
    assert data['G_ema'].neural_rendering_resolution == 32
    outputs = []
    for net in (G, data['G_ema']):  # neural rendering at 16x16 keeps this test quick
        torch.manual_seed(1234)
        with torch.no_grad():
            outputs.append(net(z, c, truncation_psi=0.7, neural_rendering_resolution=16, noise_mode='const'))
    expected, got = outputs
    for key in ('image', 'image_raw', 'image_depth'):
        assert torch.equal(got[key], expected[key]), key
    images = {'image': expected['image'], 'image_raw': expected['image_raw']}
    assert torch.equal(data['D'](images, c), D(images, c))


def test_eg3d_layout_file_loads_to_eg3d_numbers(tmp_path):
    marker = tmp_path / 'pwned'
    G, D = _tiny_eg3d_networks()
    modules = {type(m).__module__ for net in (G, D) for m in net.modules() if persistence.is_persistent(m)}
    fake_sources = {name: f'"""EG3D\'s {name} (fake)."""\nopen({str(marker)!r}, "w").close()\n' +
                    ''.join(f'class {cls.__name__}:\n    pass\n' for cls in persistence.persistent_classes()
                            if cls.__module__ == name) for name in modules}
    buf = io.BytesIO()
    _EG3DPickler(buf, fake_sources).dump(dict(G=G, D=D, G_ema=G, training_set_kwargs={'resolution': 128},
                                              augment_pipe=None))
    data = legacy.load_network_pkl(io.BytesIO(buf.getvalue()))
    assert not marker.exists()
    io_ref = np.load(FIXTURES / 'tiny_io.npz', allow_pickle=False)
    z, c = torch.from_numpy(io_ref['z']), torch.from_numpy(io_ref['c'])
    ws = data['G_ema'].mapping(z, c, truncation_psi=0.5, truncation_cutoff=4)
    np.testing.assert_allclose(ws.numpy(), io_ref['ws_psi05_cut4'], atol=1e-4, rtol=1e-4)
    images = {'image': torch.from_numpy(io_ref['synthesis_image']),
              'image_raw': torch.from_numpy(io_ref['synthesis_image_raw'])}
    np.testing.assert_allclose(data['D'](images, c).numpy(), io_ref['D_logits'], atol=1e-3)
    assert data['G'].neural_rendering_resolution == 32 and data['training_set_kwargs'] == {'resolution': 128}


def test_force_fp16_rebuilds_eg3d_networks_with_fp16_blocks():
    G, D = _tiny_eg3d_networks()
    data = _load(dict(G=G, D=D, G_ema=G), force_fp16=True)
    synthesis = data['G_ema'].backbone.synthesis
    assert data['G_ema'].init_kwargs.num_fp16_res == 4 and data['G_ema'].init_kwargs.conv_clamp == 256
    assert [getattr(synthesis, f'b{res}').use_fp16 for res in synthesis.block_resolutions] == [False] * 3 + [True] * 4
    assert torch.equal(synthesis.b256.conv1.weight, G.backbone.synthesis.b256.conv1.weight)
    assert data['D'].init_kwargs.num_fp16_res == 4 and data['G'].neural_rendering_resolution == 32


@persistence.persistent_class
class LegacyWithModRes(torch.nn.Module):
    """A persistent network holding a plain ModRes submodule, which pickles by reference to its class."""

    def __init__(self, channels):
        super().__init__()
        self.res = ModRes(channels, w_dim=4)

    def forward(self, x, d):
        return self.res(x, d)


def test_moved_module_class_still_loads(monkeypatch):
    """Pickles written when ModRes lived in training.domain_adaptation name it there; they must keep loading."""
    torch.manual_seed(0)
    net = LegacyWithModRes(2)
    with torch.no_grad():
        net.res.conv2.weight.normal_()  # a non-zero residual, so the output tells the weights apart
    monkeypatch.setattr(ModRes, '__module__', 'training.domain_adaptation')
    monkeypatch.setattr(domain_adaptation, 'ModRes', ModRes, raising=False)
    data = pickle.dumps(dict(G=net, D=net, G_ema=net))
    monkeypatch.undo()
    assert b'training.domain_adaptation' in data and not hasattr(domain_adaptation, 'ModRes')
    loaded = _load(data)['G_ema']
    x, d = torch.randn(1, 2, 4, 4), torch.randn(1, 4)
    assert isinstance(loaded.res, ModRes) and torch.equal(loaded(x, d), net(x, d))


def test_bytes_and_text_files_are_refused_with_what_to_pass(tmp_path):
    path = tmp_path / 'net.pkl'
    path.write_bytes(pickle.dumps(_tiny_snapshot()))
    with pytest.raises(TypeError, match=r'not bytes: wrap the bytes in io.BytesIO\(data\)'):
        legacy.load_network_pkl(path.read_bytes())
    with open(path, 'r', encoding='latin-1') as f, pytest.raises(TypeError, match='binary mode: open.*"rb"'):
        legacy.load_network_pkl(f)
    with pytest.raises(TypeError, match='a path or a binary file, got int'):
        legacy.load_network_pkl(3)


def test_authors_checkpoint_has_no_discriminator_documented():
    assert ('D` (a torch.nn.Module, or None for the\n    PStyle-3D authors\' .pt checkpoints'
            in legacy.load_network_pkl.__doc__)


def test_convert_refuses_existing_dest_folder_and_source(tmp_path):
    source = tmp_path / 'snapshot.pkl'
    source.write_bytes(pickle.dumps(_tiny_snapshot()))
    unrelated = tmp_path / 'notes.txt'
    unrelated.write_text('keep me')
    run = lambda *args: CliRunner().invoke(legacy.convert_network_pickle, ['--source', str(source), *map(str, args)])
    result = run('--dest', unrelated)
    assert result.exit_code == 1 and result.output.startswith('Error: --dest ') and '--overwrite' in result.output
    assert unrelated.read_text() == 'keep me'
    result = run('--dest', tmp_path)
    assert result.exit_code == 1 and 'is, holds or lies inside the input' in result.output
    (tmp_path / 'folder').mkdir()
    result = run('--dest', tmp_path / 'folder')
    assert result.exit_code == 1 and 'is a folder; give a file name' in result.output
    (tmp_path / 'folder').rmdir()
    before = source.read_bytes()
    result = run('--dest', source, '--overwrite')
    assert result.exit_code == 1 and 'lies inside the input' in result.output and source.read_bytes() == before
    result = run('--dest', unrelated, '--overwrite')
    assert result.exit_code == 0, result.output
    assert torch.equal(legacy.load_network_pkl(str(unrelated))['G'].w_avg, _tiny_snapshot()['G'].w_avg)
    assert sorted(os.listdir(tmp_path)) == ['notes.txt', 'snapshot.pkl']  # no temporary file left
    (tmp_path / 'broken.pkl').write_bytes(source.read_bytes()[:100])
    result = CliRunner().invoke(legacy.convert_network_pickle, ['--source', str(tmp_path / 'broken.pkl'),
                                                                '--dest', str(tmp_path / 'out.pkl')])
    assert result.exit_code == 1 and 'Error: cannot read --source' in result.output and 'truncated' in result.output
    assert not (tmp_path / 'out.pkl').exists()
