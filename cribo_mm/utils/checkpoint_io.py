# Copyright (c) cribo-mm contributors. All rights reserved.
"""The one checkpoint loading policy of cribo_mm, and tensors-only saving.

Every path that opens a checkpoint goes through :func:`load_checkpoint_file`:
the tools, the dense-NN evaluation, and (through the hooks installed by
:mod:`cribo_mm.utils.compat`) mmengine's ``CheckpointLoader`` behind
``--resume``, ``load_from`` and ``init_cfg=dict(type='Pretrained')``.

Policy:

* A checkpoint is a torch zip archive. Its pickle is unpickled with
  ``torch.load(weights_only=True)`` plus an allow-list of EXACT
  ``module.qualname`` names (:func:`allowed_globals`): the classes found in
  our own checkpoints, in mmengine Runner checkpoints (``HistoryBuffer``,
  numpy arrays / scalars / dtypes) and in the authors' released ones
  (``argparse.Namespace``). Nothing that runs code, imports modules or
  touches files is on it; a name is never matched by prefix, so
  ``numpy.testing._private.utils.os.system`` is not ``numpy``.
* Before unpickling, the globals of the pickle are listed statically; a
  file naming any global outside the allow-list is refused as a whole with
  :class:`UnsafeCheckpointError`, which names them all.
* On torch without tuple entries in ``torch.serialization.safe_globals``
  (< 2.6) the archive is read by ``torch.load`` with a restricted
  pure-Python unpickler that applies the same names and the same rules as
  torch's weights-only one (calls, object creation and state only for
  allow-listed objects), never by full unpickling.
* The CRC of every record of the archive is checked: a damaged tensor is
  reported as corruption, not loaded as wrong weights.
* Legacy (non-zip) torch files and raw pickles are refused: they predate
  the format torch can check.
* Full unpickling only on explicit request: ``unsafe=True`` (the tools'
  ``--unsafe-load``) or the environment variable ``CRIBO_UNSAFE_LOAD=1``
  (for the Runner paths); it warns with :class:`UnsafeLoadWarning`.

Whether loaded weights fit a model is checked by
:mod:`cribo_mm.utils.weight_fit`.
"""
import argparse
import codecs
import functools
import io
import os
import os.path as osp
import pickle
import pickletools
import re
import types
import warnings
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import torch
from torch import Tensor, nn

__all__ = [
    'CheckpointError', 'CorruptCheckpointError', 'UnsafeCheckpointError',
    'UnsafeLoadWarning', 'UNSAFE_LOAD_ENV', 'allowed_globals',
    'checkpoint_globals', 'unsafe_load_requested', 'request_unsafe_load',
    'load_checkpoint_file', 'save_checkpoint'
]

#: Environment variable that allows full unpickling for every load of the
#: process (``1``/``true``/``yes``); used by the Runner paths (``--resume``,
#: ``load_from``, ``init_cfg``), set by ``--unsafe-load`` of the tools.
UNSAFE_LOAD_ENV = 'CRIBO_UNSAFE_LOAD'

_SWITCH = (f'pass --unsafe-load to the tool, or set {UNSAFE_LOAD_ENV}=1 for '
           'the Runner (--resume, load_from, init_cfg)')

#: The statistics methods mmengine's ``HistoryBuffer`` pickles (protocol 2
#: writes them as ``getattr(HistoryBuffer, name)``).
_HISTORY_BUFFER_METHODS = ('min', 'max', 'mean', 'current')


class CheckpointError(ValueError):
    """A checkpoint file cannot be used."""


class CorruptCheckpointError(CheckpointError):
    """The file is empty, truncated, corrupt or not a checkpoint at all."""


class UnsafeCheckpointError(CheckpointError):
    """The file needs Python objects outside the allow-list.

    Attributes:
        globals (list[str]): The refused ``module.qualname`` entries.
    """

    def __init__(self, message: str, refused: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.globals = list(refused)


class UnsafeLoadWarning(UserWarning):
    """A checkpoint is being unpickled without restrictions."""


# ----------------------------------------------------------------------
# the allow-list
# ----------------------------------------------------------------------
def _history_buffer_getattr(owner: Any, name: str) -> Callable:
    """``builtins.getattr`` as seen by the unpickler: only the statistics
    methods of mmengine's ``HistoryBuffer`` can be fetched."""
    from mmengine.logging import HistoryBuffer
    if owner is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'builtins.getattr({getattr(owner, "__qualname__", owner)!r}, '
        f'{name!r}) refused: only HistoryBuffer statistics methods '
        f'({", ".join(_HISTORY_BUFFER_METHODS)}) may be fetched')


@functools.lru_cache(maxsize=1)
def allowed_globals() -> Dict[str, Any]:
    """The exact globals a checkpoint may name, beyond torch's own
    ``weights_only`` list (tensors, storages, ``OrderedDict``...).

    Returns:
        dict[str, Any]: ``'module.qualname'`` -> the object the unpickler
        gets for it. numpy 1.x (``numpy.core``) and 2.x (``numpy._core``)
        names both map to the installed numpy's objects.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer
    core = getattr(np, '_core', None) or np.core
    names: Dict[str, Any] = {
        'argparse.Namespace': argparse.Namespace,
        'collections.OrderedDict': OrderedDict,
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': np.dtype,
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
        'builtins.getattr': _history_buffer_getattr,
    }
    for package in ('numpy.core', 'numpy._core'):
        names[f'{package}.multiarray._reconstruct'] = \
            core.multiarray._reconstruct
        names[f'{package}.multiarray.scalar'] = core.multiarray.scalar
    for method in _HISTORY_BUFFER_METHODS:
        names['mmengine.logging.history_buffer.HistoryBuffer.' +
              method] = getattr(HistoryBuffer, method)
    # The classes of numpy's built-in dtypes (numpy.dtypes.Float64DType...):
    # an unpickled dtype is rebuilt as an instance of one of them.
    for code in np.typecodes['All'] + 'OSUV':
        cls = type(np.dtype(code))
        names[f'{cls.__module__}.{cls.__qualname__}'] = cls
    return names


@functools.lru_cache(maxsize=1)
def _torch_allowed_names() -> Dict[str, Any]:
    """torch's own ``weights_only`` allow-list (name -> object): tensor and
    storage rebuilding, ``torch.Size``, dtypes, ``OrderedDict``..."""
    from torch import _weights_only_unpickler as wo
    get = getattr(wo, '_get_allowed_globals', None)
    if get is not None:
        return dict(get())
    # a torch without the private table: the tensor essentials by hand
    names = {
        'collections.OrderedDict': OrderedDict,
        'torch.Size': torch.Size,
        'torch.nn.parameter.Parameter': nn.Parameter,
        '_codecs.encode': codecs.encode,
    }
    for cls in torch._storage_classes:  # resolved by torch.load itself
        names[f'{cls.__module__}.{cls.__name__}'] = cls
    for attr in dir(torch):
        if isinstance(getattr(torch, attr, None), (torch.dtype, torch.layout)):
            names[f'torch.{attr}'] = getattr(torch, attr)
    for func in ('_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_parameter',
                 '_rebuild_parameter_with_state', '_rebuild_sparse_tensor',
                 '_rebuild_meta_tensor_no_storage', '_rebuild_qtensor'):
        if hasattr(torch._utils, func):
            names[f'torch._utils.{func}'] = getattr(torch._utils, func)
    return names


@functools.lru_cache(maxsize=1)
def _all_allowed() -> Dict[str, Any]:
    """torch's and our allow-list (name -> object)."""
    names = dict(_torch_allowed_names())
    names.update(allowed_globals())
    return names


@functools.lru_cache(maxsize=1)
def _allowed_ids() -> frozenset:
    return frozenset(id(v) for v in _all_allowed().values())


# ----------------------------------------------------------------------
# static inspection
# ----------------------------------------------------------------------
def _py3_name(module: str, name: str) -> str:
    """``module.name`` with Python 2 names mapped as pickle (and torch's
    weights-only unpickler) map them, e.g. ``__builtin__`` -> ``builtins``."""
    if (module, name) in NAME_MAPPING:
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    return f'{module}.{name}'


_STRING_OPS = {
    'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE',
    'SHORT_BINSTRING', 'BINSTRING', 'STRING'
}
_NO_PUSH_OPS = {
    'PROTO', 'FRAME', 'MEMOIZE', 'PUT', 'BINPUT', 'LONG_BINPUT', 'STOP', 'POP'
}


def _pickle_globals(data: bytes, start: int = 0) -> tuple:
    """Globals named by the pickle starting at ``data[start:]``.

    Returns:
        tuple: (list of ``module.qualname``, offset after its STOP).
    """
    found: List[str] = []
    memo: Dict[int, Any] = {}
    pushed: List[Any] = []
    end = start
    stream = io.BytesIO(data)
    stream.seek(start)
    for op, arg, pos in pickletools.genops(stream):
        name = op.name
        end = pos + 1
        if name in ('GLOBAL', 'INST'):
            module, _, qual = str(arg).partition(' ')
            found.append(_py3_name(module, qual))
            pushed.append(None)
        elif name == 'STACK_GLOBAL':
            qual = pushed.pop() if pushed else None
            module = pushed.pop() if pushed else None
            if isinstance(module, str) and isinstance(qual, str):
                found.append(_py3_name(module, qual))
            else:
                found.append('<STACK_GLOBAL with a computed name>')
            pushed.append(None)
        elif name.startswith('EXT'):
            found.append(f'<copyreg extension code {arg}>')
            pushed.append(None)
        elif name in _STRING_OPS:
            pushed.append(arg)
        elif name in ('PUT', 'BINPUT', 'LONG_BINPUT'):
            memo[arg] = pushed[-1] if pushed else None
        elif name == 'MEMOIZE':
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in ('GET', 'BINGET', 'LONG_BINGET'):
            pushed.append(memo.get(arg))
        elif name not in _NO_PUSH_OPS:
            pushed.append(None)
    return found, end


def _describe(path: str) -> str:
    try:
        return f'{path} ({os.path.getsize(path)} bytes)'
    except OSError:
        return path


def _read_archive_pickles(path: str, trusted: bool = False) -> List[bytes]:
    """Every pickle record (``*.pkl``) of a torch zip checkpoint, after
    checking the archive: ``data.pkl`` present, every CRC intact and, unless
    ``trusted``, no TorchScript (which ``torch.load`` would hand to
    ``torch.jit.load``) and no compressed records (torch never writes them
    in checkpoints; a zip bomb would)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [i.filename for i in infos]
            if not any(n == 'data.pkl' or n.endswith('/data.pkl')
                       for n in names):
                raise CorruptCheckpointError(
                    f'{_describe(path)} is not a torch checkpoint: a zip '
                    'archive without a data.pkl record')
            if not trusted and any(
                    n.endswith('constants.pkl') or '/code/' in n
                    for n in names):
                raise UnsafeCheckpointError(
                    f'refused to load {_describe(path)}: it is a TorchScript '
                    'archive (torch.jit.save), whose code torch.load would '
                    'run through torch.jit.load. If you trust it, ' +
                    _SWITCH + '.')
            packed = [i.filename for i in infos
                      if i.compress_type != zipfile.ZIP_STORED]
            if packed and not trusted:
                raise CorruptCheckpointError(
                    f'{_describe(path)} is not a torch checkpoint as torch '
                    f'writes it: compressed records ({", ".join(packed[:3])})')
            # CRC of every record: torch itself does not check the tensors
            damaged = archive.testzip()
            if damaged is not None:
                raise CorruptCheckpointError(
                    f'{_describe(path)} is corrupt: record {damaged!r} fails '
                    'its CRC check')
            return [archive.read(n) for n in names if n.endswith('.pkl')]
    except (zipfile.BadZipFile, EOFError, OSError, ValueError,
            NotImplementedError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CorruptCheckpointError(
            f'{_describe(path)} is corrupt or truncated: not a readable '
            f'torch zip checkpoint ({type(e).__name__}: {e})') from e


def checkpoint_globals(path: str) -> List[str]:
    """Python globals a checkpoint's pickle names, read without loading it.

    Args:
        path (str): A torch zip checkpoint, a legacy torch file or a pickle.

    Returns:
        list[str]: ``module.qualname`` entries, sorted, without duplicates.

    Raises:
        CorruptCheckpointError: The file is not a readable checkpoint.
    """
    kind = _file_kind(path)
    if kind == 'zip':
        found = []
        try:
            for data in _read_archive_pickles(path):
                found += _pickle_globals(data)[0]
            return sorted(set(found))
        except CheckpointError:
            raise
        except Exception as e:
            raise CorruptCheckpointError(
                f'{_describe(path)} is corrupt: its pickle does not parse '
                f'({type(e).__name__}: {e})') from e
    with open(path, 'rb') as f:
        data = f.read()
    # A legacy torch file is several pickles in a row (magic number,
    # protocol, system info, the object); a raw pickle is one.
    found, offset = [], 0
    try:
        for _ in range(5):
            names, offset = _pickle_globals(data, offset)
            found += names
            if offset >= len(data) or data[offset:offset + 1] != b'\x80':
                break
    except Exception as e:
        if offset == 0:  # not even one complete pickle
            raise CorruptCheckpointError(
                f'{_describe(path)} is corrupt or not a checkpoint: it '
                'starts like a pickle but does not parse '
                f'({type(e).__name__}: {e})') from e
    return sorted(set(found))


def _file_kind(path: str) -> str:
    """``'zip'`` or ``'pickle'``; raises for anything else."""
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        raise CorruptCheckpointError(
            f'{path} is empty (0 bytes): not a checkpoint (an interrupted '
            'save?)')
    if head == b'PK\x03\x04':
        return 'zip'
    if head[:1] == b'\x80' and 2 <= head[1] <= 5:
        return 'pickle'
    raise CorruptCheckpointError(
        f'{_describe(path)} is corrupt or not a checkpoint: neither a torch '
        f'zip archive nor a pickle (first bytes {head!r})')


# ----------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------
def unsafe_load_requested(unsafe: Optional[bool] = None) -> bool:
    """Whether full unpickling was asked for.

    Args:
        unsafe (bool, optional): An explicit choice (a tool's
            ``--unsafe-load``). None reads :data:`UNSAFE_LOAD_ENV`.

    Returns:
        bool: True only for ``unsafe=True`` or a true-like environment
        value (``1``, ``true``, ``yes``, ``on``).
    """
    if unsafe is not None:
        return bool(unsafe)
    value = os.environ.get(UNSAFE_LOAD_ENV, '').strip().lower()
    if value in ('', '0', 'false', 'no', 'off'):
        return False
    if value in ('1', 'true', 'yes', 'on'):
        return True
    raise ValueError(f'{UNSAFE_LOAD_ENV}={value!r}: use 1 or 0')


def request_unsafe_load() -> None:
    """Allow full unpickling for the rest of the process (a tool's
    ``--unsafe-load``): sets :data:`UNSAFE_LOAD_ENV`, which the Runner paths
    and subprocesses see. Every file loaded so still warns."""
    os.environ[UNSAFE_LOAD_ENV] = '1'


def _torch_has_tuple_safe_globals() -> bool:
    """torch >= 2.6: ``safe_globals`` takes ``(object, 'module.name')``."""
    if not hasattr(torch.serialization, 'safe_globals'):
        return False
    version = re.findall(r'\d+', torch.__version__)[:2]
    return tuple(int(v) for v in version) >= (2, 6)


def _allowed_object(obj: Any) -> bool:
    return id(obj) in _allowed_ids()


class _RestrictedUnpickler(pickle._Unpickler):
    """The pure-Python unpickler restricted as torch's weights-only one: it
    resolves only the allow-listed exact names, calls (REDUCE, NEWOBJ, INST,
    OBJ) only allow-listed objects, sets the state (BUILD) only of instances
    of allow-listed classes (never of a class or function, which would
    change them for the whole process) and appends or assigns items only to
    lists, dicts and sets."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        key = _py3_name(module, name)
        allowed = _all_allowed()
        if key not in allowed:
            raise pickle.UnpicklingError(
                f'Unsupported global: GLOBAL {key} is not on the allow-list')
        return allowed[key]

    def _refuse_op(self, what: str, obj: Any) -> None:
        raise pickle.UnpicklingError(
            f'{what} of {getattr(obj, "__qualname__", type(obj).__name__)} '
            'refused: not on the allow-list')

    def load_reduce(self):
        if not _allowed_object(self.stack[-2]):
            self._refuse_op('a call', self.stack[-2])
        super().load_reduce()

    def load_newobj(self):
        if not _allowed_object(self.stack[-2]):
            self._refuse_op('creating an object', self.stack[-2])
        super().load_newobj()

    def load_newobj_ex(self):
        if not _allowed_object(self.stack[-3]):
            self._refuse_op('creating an object', self.stack[-3])
        super().load_newobj_ex()

    def _instantiate(self, klass, args):
        if not _allowed_object(klass):
            self._refuse_op('creating an object', klass)
        super()._instantiate(klass, args)

    def load_build(self):
        target = self.stack[-2]
        if isinstance(target, (type, types.FunctionType)) or \
                not _allowed_object(type(target)):
            self._refuse_op('setting the state', target)
        super().load_build()

    def _check_target(self, kinds: tuple, target: Any) -> None:
        if not isinstance(target, kinds):
            self._refuse_op('adding items to', target)

    def load_append(self):
        self._check_target((list, ), self.stack[-2])
        super().load_append()

    def load_appends(self):
        self._check_target((list, ), self.metastack[-1][-1])
        super().load_appends()

    def load_setitem(self):
        self._check_target((dict, ), self.stack[-3])
        super().load_setitem()

    def load_setitems(self):
        self._check_target((dict, ), self.metastack[-1][-1])
        super().load_setitems()

    def load_additems(self):
        self._check_target((set, ), self.metastack[-1][-1])
        super().load_additems()

    for _op, _method in ((pickle.REDUCE, load_reduce),
                         (pickle.NEWOBJ, load_newobj),
                         (pickle.NEWOBJ_EX, load_newobj_ex),
                         (pickle.BUILD, load_build),
                         (pickle.APPEND, load_append),
                         (pickle.APPENDS, load_appends),
                         (pickle.SETITEM, load_setitem),
                         (pickle.SETITEMS, load_setitems),
                         (pickle.ADDITEMS, load_additems)):
        dispatch[_op[0]] = _method
    del _op, _method


def _restricted_pickle_module() -> types.ModuleType:
    module = types.ModuleType('cribo_mm_restricted_pickle')
    module.Unpickler = _RestrictedUnpickler
    module.UnpicklingError = pickle.UnpicklingError
    module.load = lambda f, **kwargs: _RestrictedUnpickler(f, **kwargs).load()
    return module


def _restricted_load(path: str, map_location: Any,
                     use_torch_allowlist: Optional[bool] = None) -> Any:
    if use_torch_allowlist is None:
        use_torch_allowlist = _torch_has_tuple_safe_globals()
    if use_torch_allowlist:
        extra = [(obj, name) for name, obj in allowed_globals().items()]
        try:
            with torch.serialization.safe_globals(extra):
                return torch.load(
                    path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            # An opcode torch's unpickler lacks (e.g. FRAME of protocol 4),
            # not a refusal: the same rules through the restricted one.
            if 'Unsupported operand' not in str(e):
                raise
    # torch < 2.6: the same exact names through a restricted unpickler.
    return torch.load(
        path,
        map_location=map_location,
        pickle_module=_restricted_pickle_module(),
        weights_only=False)


def _refuse(path: str, refused: Iterable[str], why: str = '') -> None:
    refused = sorted(set(refused))
    raise UnsafeCheckpointError(
        f'refused to load {_describe(path)}: {why}it references Python '
        f'globals outside the checkpoint allow-list: {", ".join(refused)}. '
        'Unpickling them could run code or touch files on this machine. '
        'If you trust the file and its source, ' + _SWITCH + '.', refused)


def load_checkpoint_file(path: str,
                         map_location: Any = 'cpu',
                         unsafe: Optional[bool] = None,
                         use_torch_allowlist: Optional[bool] = None) -> Any:
    """Load a checkpoint file under the project's policy.

    Args:
        path (str): The file (``~`` is expanded).
        map_location (Any): As for ``torch.load``. Defaults to ``'cpu'``.
        unsafe (bool, optional): Unpickle fully (only for trusted files;
            warns). None follows :data:`UNSAFE_LOAD_ENV`.
        use_torch_allowlist (bool, optional): Enforce the allow-list with
            torch's ``weights_only`` unpickler (True) or the restricted
            ``pickle.Unpickler`` (False). None picks torch's when it takes
            exact names (torch >= 2.6). For tests.

    Returns:
        Any: The loaded object.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: The file needs objects outside the
            allow-list, or is a legacy non-zip file / raw pickle.
        CorruptCheckpointError: The file is empty, truncated, corrupt or
            not a checkpoint.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    kind = _file_kind(path)
    if unsafe_load_requested(unsafe):
        if kind == 'zip':
            # structure and CRC of each record
            _read_archive_pickles(path, trusted=True)
        warnings.warn(
            f'unpickling {_describe(path)} WITHOUT restrictions (unsafe '
            f'load requested): a crafted file can run any code as you. Only '
            'do this for files you trust.',
            UnsafeLoadWarning,
            stacklevel=2)
        try:
            return torch.load(
                path, map_location=map_location, weights_only=False)
        except (ImportError, AttributeError) as e:
            raise CheckpointError(
                f'{_describe(path)} needs Python objects that cannot be '
                f'imported here ({type(e).__name__}: {_first_line(e)})'
            ) from e
        except Exception as e:
            raise CorruptCheckpointError(
                f'{_describe(path)} could not be unpickled: corrupt or '
                f'truncated? ({type(e).__name__}: {_first_line(e)})') from e

    allowed = _all_allowed()
    names = checkpoint_globals(path)
    refused = [n for n in names if n not in allowed]
    if kind == 'pickle':
        why = ('it is a legacy (non-zip) torch file or a raw pickle, which '
               'is not loaded by default; ')
        if refused:
            _refuse(path, refused, why)
        raise UnsafeCheckpointError(
            f'refused to load {_describe(path)}: {why.rstrip("; ")}. '
            'Re-save it with torch.save (zip format), or, if you trust it, ' +
            _SWITCH + '.')
    if refused:
        _refuse(path, refused)
    try:
        return _restricted_load(path, map_location, use_torch_allowlist)
    except pickle.UnpicklingError as e:
        text = str(e)
        named = re.findall(r'GLOBAL ([\w.]+)', text)
        if named:
            _refuse(path, named)
        # torch wraps the unpickler's message in advice of its own
        detail = re.search(r'WeightsUnpickler error:\s*(.+)', text)
        detail = detail.group(1) if detail else text
        raise UnsafeCheckpointError(
            f'refused to load {_describe(path)}: its pickle uses objects in a '
            f'way checkpoints do not ({_first_line(detail)}). If you trust '
            'the file, ' + _SWITCH + '.') from e
    except RuntimeError as e:
        if 'device' in str(e) and 'deserialize' in str(e):
            raise CheckpointError(
                f'{_describe(path)} holds tensors of a device this machine '
                f'lacks; load it with map_location="cpu" ({_first_line(e)})'
            ) from e
        raise CorruptCheckpointError(
            f'{_describe(path)} is corrupt or truncated: '
            f'{type(e).__name__}: {_first_line(e)}') from e
    except (EOFError, zipfile.BadZipFile, KeyError, IndexError, ValueError,
            TypeError, OSError) as e:
        raise CorruptCheckpointError(
            f'{_describe(path)} is corrupt or truncated: '
            f'{type(e).__name__}: {_first_line(e)}') from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0][:300] if text else 'no details')


# ----------------------------------------------------------------------
# saving
# ----------------------------------------------------------------------
def _is_plain(obj: Any) -> bool:
    if isinstance(obj, Tensor) or obj is None:
        return True
    if isinstance(obj, (str, int, float, bool)):
        return True
    if isinstance(obj, (list, tuple)):
        return all(_is_plain(v) for v in obj)
    if isinstance(obj, dict):
        return all(
            isinstance(k, (str, int)) and _is_plain(v) for k, v in obj.items())
    return False


def save_checkpoint(obj: Mapping, path: str) -> None:
    """Save a tensors-only checkpoint (it loads without any allow-list).

    Args:
        obj (Mapping): Nested dicts/lists of tensors and Python scalars.
        path (str): Output file; parent folders are created.

    Raises:
        TypeError: ``obj`` holds other objects.
    """
    if not _is_plain(obj):
        raise TypeError('refusing to save a checkpoint that holds objects '
                        'other than tensors, containers and scalars')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(obj, path)
