# Copyright (c) cribo-mm contributors. All rights reserved.
"""Hostile checkpoint files, built byte by byte for the security tests.

Every payload, when unpickled without restrictions, creates or changes a
file in a *target* folder (or the *victim* file); the tests assert that
nothing there changed after a refused load. :func:`build_payloads` also
returns the global each payload must be refused for.
"""
import os
import os.path as osp
import pickle
import struct
import zipfile
from typing import Dict, NamedTuple

import torch


class Payload(NamedTuple):
    """A hostile file and what its refusal must name."""
    path: str
    #: A global the error message must name.
    culprit: str
    #: 'zip' (torch archive), 'legacy' (old torch format) or 'raw'.
    kind: str
    #: Whether a full unpickling visibly changes the target or the victim
    #: (the others are refused for the objects they would reach).
    effect: bool = True


# ----------------------------------------------------------------------
# pickle opcodes (protocol 4 allows dotted names in GLOBAL)
# ----------------------------------------------------------------------
def _global(module: str, name: str) -> bytes:
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def _str(text: str) -> bytes:
    data = text.encode()
    return b'X' + struct.pack('<I', len(data)) + data


def _int(value: int) -> bytes:
    return b'J' + struct.pack('<i', value)


def _call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)``: MARK args TUPLE REDUCE."""
    return func + b'(' + b''.join(args) + b't' + b'R'


def _tuple(*items: bytes) -> bytes:
    return b'(' + b''.join(items) + b't'


def _list(*items: bytes) -> bytes:
    return b'(' + b''.join(items) + b'l'


def _checkpoint_pickle(value: bytes) -> bytes:
    """``{'state_dict': {}, 'meta': <value>}`` as a protocol-4 pickle."""
    return (b'\x80\x04}' + _str('state_dict') + b'}' + b's' + _str('meta') +
            value + b's.')


def write_zip_checkpoint(path: str, data: bytes) -> str:
    """A torch zip archive whose ``data.pkl`` is ``data``."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as archive:
        archive.writestr('archive/data.pkl', data)
        archive.writestr('archive/byteorder', 'little')
        archive.writestr('archive/version', '3\n')
    return path


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def build_payloads(folder: str, target: str,
                   victim: str) -> Dict[str, Payload]:
    """Write every hostile file into ``folder``.

    Args:
        folder (str): Where the files go.
        target (str): A folder the payloads create files in.
        victim (str): An existing file the file-writing payloads change.

    Returns:
        dict[str, Payload]: Payload name -> file, culprit, kind.
    """
    sentinel = osp.join(target, 'PWNED')
    shell = f'touch {sentinel}'
    code = f'open({sentinel!r}, "w").close()'
    s = _str
    g = _global
    zip_payloads = {
        # plain reduce to a function that runs code
        'os_system': (_call(g('os', 'system'), s(shell)), 'os.system'),
        'posix_system': (_call(g('posix', 'system'), s(shell)),
                         'posix.system'),
        'subprocess': (_call(
            g('subprocess', 'check_call'), _list(s('touch'), s(sentinel))),
                       'subprocess.check_call'),
        'exec': (_call(g('builtins', 'exec'), s(code)), 'builtins.exec'),
        'eval': (_call(g('builtins', 'eval'), s(code)), 'builtins.eval'),
        # dotted names inside allowed packages that resolve to os functions
        'dotted_torch_serialization': (_call(
            g('torch.serialization', 'os.system'),
            s(shell)), 'torch.serialization.os.system'),
        'dotted_torch_utils': (_call(
            g('torch._utils', 'torch.serialization.os.system'),
            s(shell)), 'torch._utils.torch.serialization.os.system'),
        'dotted_numpy': (_call(
            g('numpy.testing._private.utils', 'os.system'),
            s(shell)), 'numpy.testing._private.utils.os.system'),
        'dotted_argparse': (_call(g('argparse', '_os.system'), s(shell)),
                            'argparse._os.system'),
        'dotted_numpy_deep': (_call(
            g('numpy', 'testing._private.utils.os.system'),
            s(shell)), 'numpy.testing._private.utils.os.system'),
        # a module reached as an attribute, then getattr on it
        'module_getattr': (_call(
            _call(g('builtins', 'getattr'), g('torch.serialization', 'os'),
                  s('system')), s(shell)), 'torch.serialization.os'),
        # builtins.getattr on allowed classes only (not a statistics method)
        'getattr_history_buffer': (_call(
            g('builtins', 'getattr'),
            g('mmengine.logging.history_buffer', 'HistoryBuffer'),
            s('register_statistics')), 'builtins.getattr'),
        'getattr_chain': (_call(
            g('builtins', 'getattr'),
            _call(
                g('builtins', 'getattr'),
                g('mmengine.logging.history_buffer', 'HistoryBuffer'),
                s('mean')), s('__globals__')), 'builtins.getattr'),
        # callables inside allowed packages that run code or write files
        'numpy_runstring': (_call(
            g('numpy.testing._private.utils', 'runstring'), s(code), b'}'),
                            'numpy.testing._private.utils.runstring'),
        'torch_fx_exec': (_call(
            g('torch.fx.graph_module', '_exec_with_source'), s(code), b'}'),
                          'torch.fx.graph_module._exec_with_source'),
        'numpy_save': (_call(
            g('numpy', 'save'), s(osp.join(target, 'PWNED.npy')), _int(0)),
                       'numpy.save'),
        'numpy_npyio_save': (_call(
            g('numpy.lib._npyio_impl', 'savetxt'),
            s(osp.join(target, 'PWNED.txt')),
            _call(g('numpy', 'zeros'), _int(1))), 'numpy.lib._npyio_impl'
                             '.savetxt'),
        'torch_save': (_call(
            g('torch.serialization', 'save'), _int(0),
            s(sentinel)), 'torch.serialization.save'),
        'torch_jit_compile': (_call(
            g('torch.jit', 'CompilationUnit'), s('def f(x):\n return x\n')),
                              'torch.jit.CompilationUnit'),
        # a file-writing class: numpy.memmap in w+ mode truncates the victim
        'numpy_memmap': (_call(
            g('numpy', 'memmap'), s(victim), s('uint8'), s('w+'), _int(0),
            _tuple(_int(1))), 'numpy.memmap'),
        'numpy_core_memmap': (_call(
            g('numpy._core.memmap', 'memmap'), s(victim), s('uint8'),
            s('w+'), _int(0), _tuple(_int(1))), 'numpy._core.memmap.memmap'),
        # functools.partial around exec, then called
        'functools_partial': (_call(
            g('functools', 'partial'), g('builtins', 'exec'), s(code)) +
                              b')R', 'functools.partial'),
        # protocol-4 STACK_GLOBAL from memoised strings
        'stack_global': (
            b'\x8c\x02os\x94\x8c\x06system\x94\x93' + b'(' + s(shell) +
            b'tR', 'os.system'),
        # INST opcode (calls the class/function with the marked args)
        'inst_opcode': (b'(' + s(shell) + b'ios\nsystem\n', 'os.system'),
        # __import__ then getattr
        'import_module': (_call(
            _call(g('builtins', 'getattr'),
                  _call(g('builtins', '__import__'), s('os')), s('system')),
            s(shell)), 'builtins.__import__'),
    }
    out = {}
    for name, (value, culprit) in zip_payloads.items():
        path = write_zip_checkpoint(
            osp.join(folder, f'{name}.pth'), _checkpoint_pickle(value))
        out[name] = Payload(path, culprit, 'zip',
                            name not in NO_VISIBLE_EFFECT)
    # torch.save itself, new format, with an object that reduces to exec
    path = osp.join(folder, 'torch_save_reduce.pth')
    torch.save({'state_dict': {}, 'x': _Reduce(exec, code)}, path)
    out['torch_save_reduce'] = Payload(path, 'builtins.exec', 'zip')
    # legacy (non-zip) torch file and a raw pickle
    path = osp.join(folder, 'legacy.pth')
    torch.save({'x': _Reduce(os.system, shell)},
               path,
               _use_new_zipfile_serialization=False)
    out['legacy'] = Payload(path, f'{os.system.__module__}.system', 'legacy')
    path = osp.join(folder, 'raw.pkl')
    with open(path, 'wb') as f:
        pickle.dump({'x': _Reduce(eval, code)}, f, protocol=2)
    out['raw_pickle'] = Payload(path, 'builtins.eval', 'raw')
    return out


def snapshot(target: str, victim: str) -> tuple:
    """What a payload could have changed: the target folder's entries and
    the victim's bytes."""
    with open(victim, 'rb') as f:
        return sorted(os.listdir(target)), f.read()


#: Names of the payloads :func:`build_payloads` writes.
PAYLOAD_NAMES = (
    'os_system', 'posix_system', 'subprocess', 'exec', 'eval',
    'dotted_torch_serialization', 'dotted_torch_utils', 'dotted_numpy',
    'dotted_argparse', 'dotted_numpy_deep', 'module_getattr',
    'getattr_history_buffer', 'getattr_chain', 'numpy_runstring',
    'torch_fx_exec', 'numpy_save', 'numpy_npyio_save', 'torch_save',
    'torch_jit_compile', 'numpy_memmap', 'numpy_core_memmap',
    'functools_partial', 'stack_global', 'inst_opcode', 'import_module',
    'torch_save_reduce', 'legacy', 'raw_pickle')
ZIP_PAYLOAD_NAMES = PAYLOAD_NAMES[:-2]
#: Payloads refused for what they reach (a method's globals, TorchScript
#: compilation), without a visible effect of their own.
NO_VISIBLE_EFFECT = ('getattr_history_buffer', 'getattr_chain',
                     'torch_jit_compile')
