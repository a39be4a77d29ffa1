"""torch_utils.persistence: constructor-argument capture and EG3D's pickle layout, without running embedded code."""

import copy
import io
import pickle
import pickletools

import numpy as np
import pytest
import torch

import dnnlib
from torch_utils import persistence


@persistence.persistent_class
class PersistTinyLayer(torch.nn.Module):
    """y = x @ weight.T * gain + bias."""

    def __init__(self, in_features, out_features, gain=1.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]))
        self.bias = torch.nn.Parameter(torch.zeros([out_features]))
        self.register_buffer('calls', torch.zeros([], dtype=torch.int64))
        self.gain = np.float64(gain)

    def forward(self, x):
        return x @ self.weight.t() * float(self.gain) + self.bias


@persistence.persistent_class
class PersistTinyNet(torch.nn.Module):
    """Two persistent layers around a plain (non-persistent) activation module."""

    def __init__(self, width, layer_kwargs={}):
        super().__init__()
        self.net = torch.nn.Sequential(PersistTinyLayer(width, width, **layer_kwargs), torch.nn.Softplus())
        self.out = PersistTinyLayer(width, 1)

    def forward(self, x):
        return self.out(self.net(x))


def _globals(data: bytes):
    """The (module, name) pairs a pickle refers to, in order of appearance."""
    strings, found = [], []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
            strings.append(arg)
        elif op.name == 'STACK_GLOBAL':
            found.append((strings[-2], strings[-1]))
        elif op.name == 'GLOBAL':
            found.append(tuple(arg.split(' ')))
    return found


class _Forged:
    """Pickles as a persistent object with a hand-made `meta` (what a foreign or hostile file holds)."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return persistence._reconstruct_persistent_obj, (self.meta,)


def test_init_args_are_recorded_as_deep_copies():
    kwargs = {'gain': 0.5}
    net = PersistTinyNet(3, layer_kwargs=kwargs)
    kwargs['gain'] = 7.0
    assert net.init_args == (3,)
    assert net.init_kwargs == {'layer_kwargs': {'gain': 0.5}}
    assert isinstance(net.init_kwargs, dnnlib.EasyDict)
    assert net.net[0].init_args == (3, 3) and net.net[0].init_kwargs == {'gain': 0.5}
    net.init_kwargs.layer_kwargs['gain'] = 9.0  # the property hands out copies
    assert net.init_kwargs.layer_kwargs['gain'] == 0.5


def test_decorated_class_keeps_name_module_and_is_persistent():
    assert PersistTinyNet.__name__ == 'PersistTinyNet'
    assert PersistTinyNet.__module__ == __name__
    assert persistence.is_persistent(PersistTinyNet) and persistence.is_persistent(PersistTinyNet(2))
    assert not persistence.is_persistent(torch.nn.Softplus()) and not persistence.is_persistent(np.zeros(3))
    assert persistence.persistent_class(PersistTinyNet) is PersistTinyNet
    assert PersistTinyNet in persistence.persistent_classes()


def test_pickle_layout_matches_eg3d():
    net = PersistTinyNet(2)
    data = pickle.dumps(net)
    assert _globals(data)[0] == ('torch_utils.persistence', '_reconstruct_persistent_obj')
    func, args = net.__reduce__()
    assert func is persistence._reconstruct_persistent_obj and len(args) == 1
    meta = args[0]
    assert list(meta) == ['type', 'version', 'module_src', 'class_name', 'state']
    assert meta['type'] == 'class' and meta['version'] == 6 and meta['class_name'] == 'PersistTinyNet'
    assert 'class PersistTinyNet(torch.nn.Module):' in meta['module_src']
    state = meta['state']
    assert list(state)[-2:] == ['_init_args', '_init_kwargs']
    assert state['_init_args'] == (2,) and state['_init_kwargs'] == {}
    assert set(state['_modules']) == {'net', 'out'} and state['_parameters'] == {}
    # The plain Sequential/Softplus are pickled by reference, exactly as EG3D does.
    assert ('torch.nn.modules.container', 'Sequential') in _globals(data)
    assert ('torch.nn.modules.activation', 'Softplus') in _globals(data)


class _EG3DReferencePickler(pickle.Pickler):
    """EG3D's recipe for persistent objects: take object.__reduce__()'s state, wrap it in `meta`."""

    def reducer_override(self, obj):
        if not persistence.is_persistent(obj):
            return NotImplemented
        fields = list(torch.nn.Module.__reduce__(obj))
        meta = dict(type='class', version=6, module_src=obj._orig_module_src, class_name=type(obj).__name__,
                    state=fields[2])
        return persistence._reconstruct_persistent_obj, (meta,), None


def test_pickle_bytes_equal_eg3d_recipe():
    net = PersistTinyNet(3, layer_kwargs={'gain': 2.0})
    buf = io.BytesIO()
    _EG3DReferencePickler(buf, protocol=pickle.DEFAULT_PROTOCOL).dump(net)
    assert pickle.dumps(net) == buf.getvalue()


def test_round_trip_and_deepcopy_give_identical_outputs():
    torch.manual_seed(0)
    net = PersistTinyNet(4, layer_kwargs={'gain': 0.25}).eval()
    x = torch.randn(5, 4)
    for clone in (pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        assert type(clone) is PersistTinyNet and clone is not net
        assert clone.init_kwargs == {'layer_kwargs': {'gain': 0.25}} and not clone.training
        assert torch.equal(clone(x), net(x))
        assert clone.out.weight.data_ptr() != net.out.weight.data_ptr()


def test_foreign_module_source_is_never_executed(tmp_path):
    marker = tmp_path / 'pwned'
    net = PersistTinyLayer(2, 2)
    meta = net.__reduce__()[1][0]
    meta['module_src'] = f'open({str(marker)!r}, "w").write("x")\n' + meta['module_src']
    data = pickle.dumps(_Forged(meta))
    assert _globals(data)[0] == ('torch_utils.persistence', '_reconstruct_persistent_obj')
    with pytest.raises(pickle.UnpicklingError, match='legacy.load_network_pkl'):
        pickle.loads(data)
    with pytest.raises(pickle.UnpicklingError, match='legacy.load_network_pkl'):
        persistence._reconstruct_persistent_obj(meta)
    assert not marker.exists()


def test_wrong_version_is_refused():
    meta = PersistTinyLayer(1, 1).__reduce__()[1][0]
    meta['version'] = 5
    with pytest.raises(pickle.UnpicklingError, match='version 6'):
        persistence._reconstruct_persistent_obj(meta)


def test_non_data_constructor_arguments_are_refused():
    with pytest.raises(TypeError, match='gain.*function'):
        PersistTinyLayer(1, 1, gain=lambda: 1.0)
    with pytest.raises(TypeError, match='layer_kwargs'):
        PersistTinyNet(1, layer_kwargs={'gain': io.BytesIO()})
    with pytest.raises(TypeError, match='decorates classes'):
        persistence.persistent_class(lambda: None)
