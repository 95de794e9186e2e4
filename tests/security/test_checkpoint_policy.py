# Copyright (c) cribo-mm contributors. All rights reserved.
"""The checkpoint loading policy (``cribo_mm.utils.checkpoint_io``) against
hostile, corrupt and legitimate files."""
import argparse
import datetime
import os
import pickle
import random
import warnings
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from cribo_mm.utils import checkpoint_io as cio
from cribo_mm.utils.checkpoint_io import (CorruptCheckpointError,
                                          UnsafeCheckpointError,
                                          UnsafeLoadWarning,
                                          checkpoint_globals,
                                          load_checkpoint_file)
from tests.security.payloads import (NO_VISIBLE_EFFECT, PAYLOAD_NAMES,
                                     ZIP_PAYLOAD_NAMES, write_zip_checkpoint)

# the hand-built payloads use pickle protocol 4, which torch warns about
pytestmark = pytest.mark.filterwarnings('ignore:Detected pickle protocol')

ENFORCERS = [
    pytest.param(True, id='torch-weights-only'),
    pytest.param(False, id='restricted-unpickler'),
]


@pytest.fixture(autouse=True)
def _no_unsafe_env(monkeypatch):
    # set (not deleted) so that monkeypatch restores it after tests that
    # call request_unsafe_load()
    monkeypatch.setenv(cio.UNSAFE_LOAD_ENV, '0')


def test_payload_list_is_complete(payloads):
    assert tuple(payloads.files) == PAYLOAD_NAMES


@pytest.mark.parametrize(
    'name', [n for n in PAYLOAD_NAMES if n not in NO_VISIBLE_EFFECT])
def test_payloads_are_real(name, payloads):
    """Without the policy each payload does what it is built for, so the
    refusal tests below can fail."""
    payload = payloads.files[name]
    assert payload.effect
    try:
        if payload.kind == 'raw':
            with open(payload.path, 'rb') as f:
                pickle.load(f)
        else:
            with pytest.warns(UnsafeLoadWarning, match='WITHOUT'):
                load_checkpoint_file(payload.path, unsafe=True)
        with pytest.raises(AssertionError):
            payloads.assert_untouched(name)
    finally:
        payloads.restore()


@pytest.mark.parametrize('use_torch', ENFORCERS)
@pytest.mark.parametrize('name', PAYLOAD_NAMES)
def test_policy_refuses_payload(name, use_torch, payloads):
    payload = payloads.files[name]
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(payload.path, use_torch_allowlist=use_torch)
    payloads.assert_untouched(name)
    message = str(info.value)
    assert payload.path in message
    assert payload.culprit in message, message
    assert '--unsafe-load' in message and cio.UNSAFE_LOAD_ENV in message
    if payload.kind != 'zip':
        assert 'legacy' in message


@pytest.mark.parametrize('use_torch', ENFORCERS)
@pytest.mark.parametrize('name', ZIP_PAYLOAD_NAMES)
def test_unpickler_refuses_payload_without_the_scan(name, use_torch,
                                                    payloads):
    """Second line of defence: the unpickler itself, given the file with no
    static scan first, resolves no global outside the exact allow-list."""
    payload = payloads.files[name]
    with pytest.raises(pickle.UnpicklingError):
        cio._restricted_load(payload.path, 'cpu', use_torch)
    payloads.assert_untouched(name)


def _class_tampering_pickle() -> bytes:
    """Sets ``argparse.Namespace.__init__ = codecs.encode`` through BUILD's
    slot state on the class object itself (names all allow-listed)."""
    from tests.security.payloads import _global, _str
    return (b'\x80\x02}' + _str('args') + _global('argparse', 'Namespace') +
            b'N}' + _str('__init__') + _global('_codecs', 'encode') +
            b's\x86bs.')


@pytest.mark.parametrize('use_torch', ENFORCERS)
def test_no_state_change_of_allowed_classes(use_torch, tmp_path,
                                            monkeypatch):
    original = argparse.Namespace.__init__
    monkeypatch.setattr(argparse.Namespace, '__init__', original)
    path = write_zip_checkpoint(str(tmp_path / 'tamper.pth'),
                                _class_tampering_pickle())
    # the payload is real: a plain unpickler changes the class
    with zipfile.ZipFile(path) as archive:
        pickle.loads(archive.read('archive/data.pkl'))
    assert argparse.Namespace.__init__ is not original
    monkeypatch.setattr(argparse.Namespace, '__init__', original)
    with pytest.raises(UnsafeCheckpointError, match='state|BUILD|build'):
        load_checkpoint_file(path, use_torch_allowlist=use_torch)
    assert argparse.Namespace.__init__ is original


@pytest.mark.parametrize('name', ['os_system', 'dotted_numpy',
                                  'numpy_memmap', 'legacy'])
def test_environment_switch_allows_full_unpickling(name, payloads,
                                                   monkeypatch):
    monkeypatch.setenv(cio.UNSAFE_LOAD_ENV, '1')
    try:
        with pytest.warns(UnsafeLoadWarning) as record:
            load_checkpoint_file(payloads.files[name].path)
        assert payloads.files[name].path in str(record[0].message)
        assert 'run any code' in str(record[0].message)
    finally:
        payloads.restore()


def test_unsafe_switch_loads_a_trusted_object(tmp_path, monkeypatch):
    path = str(tmp_path / 'dated.pth')
    torch.save({'day': datetime.date(2024, 5, 1)}, path)
    with pytest.raises(UnsafeCheckpointError, match='datetime.date'):
        load_checkpoint_file(path)
    with pytest.warns(UnsafeLoadWarning, match='dated.pth'):
        assert load_checkpoint_file(
            path, unsafe=True)['day'] == datetime.date(2024, 5, 1)
    cio.request_unsafe_load()
    assert os.environ[cio.UNSAFE_LOAD_ENV] == '1'
    with pytest.warns(UnsafeLoadWarning):
        load_checkpoint_file(path)
    # an explicit False wins over the environment
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_file(path, unsafe=False)


def test_environment_value_must_be_clear(monkeypatch, tmp_path):
    path = str(tmp_path / 'w.pth')
    torch.save({'w': torch.zeros(1)}, path)
    monkeypatch.setenv(cio.UNSAFE_LOAD_ENV, 'maybe')
    with pytest.raises(ValueError, match=cio.UNSAFE_LOAD_ENV):
        load_checkpoint_file(path)
    monkeypatch.setenv(cio.UNSAFE_LOAD_ENV, '0')
    assert torch.equal(load_checkpoint_file(path)['w'], torch.zeros(1))


# ----------------------------------------------------------------------
# what our checkpoints hold loads without the switch
# ----------------------------------------------------------------------
def _runner_like_checkpoint():
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_checkpoint_policy')
    for value in (1.5, 2.5):
        hub.update_scalar('train/loss', value)
    hub.update_info('iter', 3)
    hub.update_info('seed', np.int64(7))
    return OrderedDict(
        meta=dict(
            epoch=1,
            iter=3,
            np_rng=np.random.RandomState(0).get_state(),
            dtypes=[np.dtype(c) for c in 'bBhHiIlLqQefdgFDG?OSUVMm'],
            scalars=[np.float32(1.5), np.int16(-2), np.bool_(True)],
            array=np.arange(6, dtype=np.float64).reshape(2, 3),
            objects=np.array([{'a': 1}, None], dtype=object)),
        state_dict=OrderedDict(w=torch.ones(2, 3), p=nn.Parameter(
            torch.zeros(2))),
        message_hub=hub.state_dict(),
        args=argparse.Namespace(arch='vit_small', lr=0.1),
        optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)],
                                  lr=0.1, momentum=0.9).state_dict())


@pytest.mark.parametrize('use_torch', ENFORCERS)
def test_runner_content_loads(tmp_path, use_torch):
    path = str(tmp_path / 'runner.pth')
    saved = _runner_like_checkpoint()
    torch.save(saved, path)
    loaded = load_checkpoint_file(path, use_torch_allowlist=use_torch)
    assert loaded['args'] == saved['args']
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2, 3))
    meta = loaded['meta']
    assert [d.str for d in meta['dtypes']] == [
        d.str for d in saved['meta']['dtypes']]
    assert np.array_equal(meta['array'], saved['meta']['array'])
    assert meta['objects'][0] == {'a': 1}
    assert type(meta['scalars'][1]) is np.int16
    assert np.array_equal(meta['np_rng'][1], saved['meta']['np_rng'][1])
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert buffer.mean() == 2.0 and buffer.current() == 2.5
    assert loaded['message_hub']['runtime_info']['seed'] == 7


def test_old_torch_without_safe_globals(tmp_path, monkeypatch):
    """torch < 2.6 (no tuple entries in safe_globals; on the oldest no
    private allow-list table either): the restricted unpickler applies the
    same exact names."""
    from torch import _weights_only_unpickler as wo
    monkeypatch.setattr(torch, '__version__', '2.1.2')
    assert not cio._torch_has_tuple_safe_globals()
    monkeypatch.delattr(wo, '_get_allowed_globals')
    for cached in (cio._torch_allowed_names, cio._all_allowed,
                   cio._allowed_ids):
        cached.cache_clear()
    try:
        path = str(tmp_path / 'runner.pth')
        torch.save(_runner_like_checkpoint(), path)
        loaded = load_checkpoint_file(path)
        assert torch.equal(loaded['state_dict']['w'], torch.ones(2, 3))
        assert isinstance(loaded['state_dict']['p'], nn.Parameter)
        evil = str(tmp_path / 'evil.pth')
        write_zip_checkpoint(evil, b'\x80\x02cposix\nsystem\n(X\x04\x00\x00'
                             b'\x00trueR.')
        with pytest.raises(UnsafeCheckpointError, match='posix.system'):
            load_checkpoint_file(evil)
    finally:
        for cached in (cio._torch_allowed_names, cio._all_allowed,
                       cio._allowed_ids):
            cached.cache_clear()


def test_numpy1_names_load(tmp_path):
    """Files written under numpy 1.x name ``numpy.core.multiarray``."""
    path = str(tmp_path / 'np2.pth')
    torch.save({'x': np.float64(2.5), 'a': np.arange(3)}, path)
    with zipfile.ZipFile(path) as archive:
        records = {n: archive.read(n) for n in archive.namelist()}
    pkl = [n for n in records if n.endswith('data.pkl')][0]
    assert b'numpy._core.multiarray' in records[pkl] or \
        b'numpy.core.multiarray' in records[pkl]
    records[pkl] = records[pkl].replace(b'numpy._core.multiarray',
                                        b'numpy.core.multiarray')
    old = str(tmp_path / 'np1.pth')
    with zipfile.ZipFile(old, 'w', zipfile.ZIP_STORED) as archive:
        for name, data in records.items():
            archive.writestr(name, data)
    assert 'numpy.core.multiarray.scalar' in checkpoint_globals(old)
    for use_torch in (True, False):
        loaded = load_checkpoint_file(old, use_torch_allowlist=use_torch)
        assert loaded['x'] == 2.5 and list(loaded['a']) == [0, 1, 2]


def test_allow_list_is_exact():
    names = cio.allowed_globals()
    assert all('.' in n for n in names)
    for bad in ('numpy.memmap', 'builtins.eval', 'builtins.exec',
                'functools.partial', 'os.system', 'numpy.load',
                'mmengine.config.config.ConfigDict', 'numpy.save'):
        assert bad not in names and bad not in cio._all_allowed()
    # getattr is our restricted one: HistoryBuffer statistics only
    from mmengine.logging import HistoryBuffer
    assert names['builtins.getattr'](HistoryBuffer, 'mean') is \
        HistoryBuffer.mean
    for owner, attr in ((HistoryBuffer, '__init__'),
                        (HistoryBuffer, 'register_statistics'),
                        (os, 'system'), (HistoryBuffer.mean, '__globals__')):
        with pytest.raises(pickle.UnpicklingError, match='getattr'):
            names['builtins.getattr'](owner, attr)


# ----------------------------------------------------------------------
# corrupt files
# ----------------------------------------------------------------------
def _good_file(tmp_path):
    path = tmp_path / 'good.pth'
    torch.save({'state_dict': {f'w{i}': torch.full((64, 64), float(i))
                               for i in range(4)}}, path)
    return path.read_bytes()


@pytest.mark.parametrize('kind', [
    'empty', 'truncated', 'truncated_head', 'random', 'random_pickle_head',
    'zeroed', 'bit_flip', 'text', 'zip_without_pickle', 'garbled_pickle'
])
@pytest.mark.parametrize('unsafe', [False, True])
def test_corrupt_files_say_so(kind, unsafe, tmp_path):
    data = _good_file(tmp_path)
    rng = random.Random(0)
    path = tmp_path / f'{kind}.pth'
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'truncated':
        path.write_bytes(data[:len(data) // 2])
    elif kind == 'truncated_head':
        path.write_bytes(data[:100])
    elif kind == 'random':
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(4096)))
    elif kind == 'random_pickle_head':
        path.write_bytes(b'\x80\x02' +
                         bytes(rng.getrandbits(8) for _ in range(4096)))
    elif kind == 'zeroed':
        buf = bytearray(data)
        buf[200:20000] = bytes(19800)
        path.write_bytes(bytes(buf))
    elif kind == 'bit_flip':  # inside a tensor: torch.load does not see it
        buf = bytearray(data)
        buf[data.index(torch.full((64, ), 3.).numpy().tobytes()) + 9] ^= 1
        path.write_bytes(bytes(buf))
    elif kind == 'text':
        path.write_text('model weights go here\n' * 20)
    elif kind == 'zip_without_pickle':
        with zipfile.ZipFile(path, 'w') as archive:
            archive.writestr('readme.txt', 'hello')
    else:
        write_zip_checkpoint(str(path), b'\x80\x02}q\x00(X\x01')
    with pytest.raises(CorruptCheckpointError) as info, \
            warnings.catch_warnings():
        warnings.simplefilter('ignore', UnsafeLoadWarning)
        load_checkpoint_file(str(path), unsafe=unsafe)
    message = str(info.value)
    assert str(path) in message
    assert any(w in message
               for w in ('corrupt', 'not a checkpoint', 'empty', 'truncated'))
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_torchscript_archive_is_refused(tmp_path):
    path = str(tmp_path / 'scripted.pth')
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), path)
    with pytest.raises(UnsafeCheckpointError, match='TorchScript'):
        load_checkpoint_file(path)
    with pytest.warns(UnsafeLoadWarning):
        module = load_checkpoint_file(path, unsafe=True)
    assert module(torch.zeros(1, 2)).shape == (1, 2)


def test_compressed_archive_is_refused(tmp_path):
    data = _good_file(tmp_path)
    with zipfile.ZipFile(tmp_path / 'good.pth') as archive:
        records = {n: archive.read(n) for n in archive.namelist()}
    path = tmp_path / 'deflated.pth'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, record in records.items():
            archive.writestr(name, record)
    assert len(path.read_bytes()) < len(data)
    with pytest.raises(CorruptCheckpointError, match='compressed'):
        load_checkpoint_file(str(path))


def test_every_pickle_record_is_checked(tmp_path, payloads):
    """A clean data.pkl next to a hostile one that torch may pick."""
    with zipfile.ZipFile(payloads.files['os_system'].path) as archive:
        evil = archive.read('archive/data.pkl')
    path = tmp_path / 'two.pth'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('archive/data.pkl', evil)
        archive.writestr('archive/byteorder', 'little')
        archive.writestr('a/data.pkl', pickle.dumps({}, protocol=2))
    for use_torch in (True, False):
        with pytest.raises(UnsafeCheckpointError, match='os.system'):
            load_checkpoint_file(str(path), use_torch_allowlist=use_torch)
    payloads.assert_untouched('os_system')


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_legacy_format_is_refused_even_when_clean(tmp_path):
    path = str(tmp_path / 'old.pth')
    torch.save({'w': torch.ones(2)},
               path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match='legacy'):
        load_checkpoint_file(path)
    with pytest.warns(UnsafeLoadWarning):
        assert torch.equal(load_checkpoint_file(path, unsafe=True)['w'],
                           torch.ones(2))


def test_missing_device_is_not_called_corrupt(tmp_path, monkeypatch):
    path = str(tmp_path / 'gpu.pth')
    torch.save({'w': torch.zeros(1)}, path)

    def load(*args, **kwargs):
        raise RuntimeError('Attempting to deserialize object on a CUDA device '
                           'but torch.cuda.is_available() is False.')

    monkeypatch.setattr(torch, 'load', load)
    with pytest.raises(cio.CheckpointError, match='map_location') as info:
        load_checkpoint_file(path, map_location=None)
    assert not isinstance(info.value, CorruptCheckpointError)


@pytest.mark.parametrize('use_torch', ENFORCERS)
def test_protocol_4_checkpoint_loads(use_torch, tmp_path):
    """STACK_GLOBAL names (protocol >= 4) are resolved by the scan."""
    path = str(tmp_path / 'p4.pth')
    saved = _runner_like_checkpoint()
    torch.save(saved, path, pickle_protocol=4)
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in \
        checkpoint_globals(path)
    loaded = load_checkpoint_file(path, use_torch_allowlist=use_torch)
    assert loaded['args'] == saved['args']
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 2.0
