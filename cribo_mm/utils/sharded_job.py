# Copyright (c) cribo-mm contributors. All rights reserved.
"""Resumable work over many items, sharded over ranks, merged on rank 0.

The items ``[0, num_items)`` are cut into chunks of ``chunk_size``; chunk
``c`` belongs to shard ``c % num_shards``. Every finished chunk is written
atomically to the job folder and marked done, so an interrupted run
(pre-emption, a crashed node) resumes where it stopped, and a run with a
different number of shards can finish a job started with another one. The
settings that decide the result are stored in ``settings.json``; resuming
with other settings is refused, naming the setting.

Layout of ``<folder>``::

    settings.json                 # what the results depend on
    chunk_000000.json             # a JSON payload, or
    chunk_000000.<name>.npy       # one .npy file per array of the payload
    chunk_000000.done             # written last: the chunk is complete

Ranks come from ``torch.distributed`` when it is initialised (torchrun,
Slurm), or are given by hand (``--shard i/n`` of the ORL tools, e.g. Slurm
job arrays without a process group).
"""
import json
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

__all__ = ['ShardedJob', 'ShardedJobError', 'parse_shard']

Payload = Union[dict, list, Dict[str, np.ndarray]]


class ShardedJobError(RuntimeError):
    """A job folder does not match the run (settings, missing chunks)."""


def _read_json(path: str):
    """Parse a JSON file of the job folder, naming it when it is damaged."""
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ShardedJobError(
            f'{path!r} is not valid JSON ({e.msg} at line {e.lineno}, '
            f'column {e.colno}): delete it (and its .done marker) to '
            'recompute it') from e
    except UnicodeDecodeError as e:
        raise ShardedJobError(f'{path!r} is not a UTF-8 JSON file ({e})') \
            from e


def parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """Parse ``'i/n'`` (shard ``i`` of ``n``, 0-based).

    Args:
        text (str, optional): The value of a ``--shard`` option.

    Returns:
        tuple[int, int] | None: ``(i, n)``, or None for None.

    Raises:
        ValueError: Not of the form ``i/n`` with ``0 <= i < n``.
    """
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split('/'))
    except ValueError:
        raise ValueError(f'--shard must be i/n (e.g. 0/4), got {text!r}')
    if not 0 <= i < n:
        raise ValueError(f'--shard {text!r}: need 0 <= i < n')
    return i, n


def _dist_info() -> Tuple[int, int]:
    from mmengine.dist import get_dist_info
    return get_dist_info()


class ShardedJob:
    """Chunks of a job, their owners and their stored results.

    Args:
        folder (str): Job folder (created).
        num_items (int): Items of the job.
        chunk_size (int): Items per chunk.
        settings (dict): JSON-able values the results depend on; stored on
            the first run and compared on every later one.
        shard (tuple[int, int], optional): ``(index, count)`` of this
            process. Defaults to the ``torch.distributed`` rank and world
            size (``(0, 1)`` without a process group).
    """

    def __init__(self,
                 folder: str,
                 num_items: int,
                 chunk_size: int,
                 settings: dict,
                 shard: Optional[Tuple[int, int]] = None) -> None:
        if num_items <= 0:
            raise ValueError(f'a job needs items, got num_items={num_items}')
        if chunk_size <= 0:
            raise ValueError(f'chunk_size must be positive, got {chunk_size}')
        self.folder = folder
        self.num_items = num_items
        self.chunk_size = chunk_size
        self.shard = shard if shard is not None else _dist_info()
        self.num_chunks = -(-num_items // chunk_size)
        os.makedirs(folder, exist_ok=True)
        self._check_settings(
            dict(settings, num_items=num_items, chunk_size=chunk_size))

    def _check_settings(self, settings: dict) -> None:
        path = osp.join(self.folder, 'settings.json')
        settings = json.loads(json.dumps(settings))  # tuples -> lists
        if osp.isfile(path):
            old = _read_json(path)
            for key in sorted(set(old) | set(settings)):
                if old.get(key) != settings.get(key):
                    raise ShardedJobError(
                        f'{path!r} was written with {key}={old.get(key)!r}, '
                        f'this run has {key}={settings.get(key)!r}: use '
                        'another work folder or delete this one')
            return
        # Every shard may write it: the content is the same.
        _atomic_write(path, lambda f: json.dump(settings, f, indent=1), 'w')

    # ------------------------------------------------------------------
    def chunk_range(self, chunk: int) -> range:
        """Items of ``chunk``."""
        start = chunk * self.chunk_size
        return range(start, min(start + self.chunk_size, self.num_items))

    def my_chunks(self) -> List[int]:
        """Chunks owned by this shard."""
        index, count = self.shard
        return list(range(index, self.num_chunks, count))

    def is_done(self, chunk: int) -> bool:
        """Whether ``chunk`` has a complete stored result."""
        return osp.isfile(self._path(chunk, 'done'))

    def pending(self) -> List[int]:
        """Chunks of this shard without a stored result."""
        return [c for c in self.my_chunks() if not self.is_done(c)]

    def missing(self) -> List[int]:
        """Chunks of any shard without a stored result."""
        return [c for c in range(self.num_chunks) if not self.is_done(c)]

    def _path(self, chunk: int, suffix: str) -> str:
        return osp.join(self.folder, f'chunk_{chunk:06d}.{suffix}')

    # ------------------------------------------------------------------
    def save(self, chunk: int, payload: Payload) -> None:
        """Store the result of ``chunk`` and mark it done.

        Args:
            chunk (int): The chunk.
            payload (dict | list): JSON-able, or a dict of arrays (one
                ``.npy`` per array).
        """
        if _is_arrays(payload):
            for name, arr in payload.items():
                _atomic_write(
                    self._path(chunk, f'{name}.npy'),
                    lambda f, a=arr: np.save(f, np.asarray(a)), 'wb')
        else:
            _atomic_write(
                self._path(chunk, 'json'), lambda f: json.dump(payload, f),
                'w')
        _atomic_write(self._path(chunk, 'done'), lambda f: None, 'w')

    def load(self, chunk: int, names: Optional[List[str]] = None,
             mmap: bool = False) -> Payload:
        """The stored result of ``chunk``.

        Args:
            chunk (int): The chunk.
            names (list[str], optional): Array names of an array payload;
                None reads the JSON payload.
            mmap (bool): Memory-map the arrays. Defaults to False.

        Returns:
            dict | list: The payload.
        """
        if not self.is_done(chunk):
            raise ShardedJobError(
                f'chunk {chunk} of {self.folder!r} is not done (shard '
                f'{chunk % self.shard[1]} of {self.shard[1]} owns it)')
        if names is None:
            return _read_json(self._path(chunk, 'json'))
        return {
            n: np.load(
                self._path(chunk, f'{n}.npy'), mmap_mode='r' if mmap else None)
            for n in names
        }

    def merged(self, names: Optional[List[str]] = None,
               mmap: bool = False) -> Iterator[Payload]:
        """All payloads in chunk order; fails naming the missing chunks.

        Args:
            names (list[str], optional): See :meth:`load`.
            mmap (bool): See :meth:`load`.

        Yields:
            dict | list: One payload per chunk.
        """
        missing = self.missing()
        if missing:
            raise ShardedJobError(
                f'{len(missing)} of {self.num_chunks} chunks in '
                f'{self.folder!r} are not done yet (first: {missing[:5]}); '
                'run the shards that own them, then merge again')
        for c in range(self.num_chunks):
            yield self.load(c, names, mmap)


def _is_arrays(payload) -> bool:
    return isinstance(payload, dict) and payload and all(
        isinstance(v, np.ndarray) for v in payload.values())


def _atomic_write(path: str, write, mode: str) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, mode) as f:
        write(f)
    os.replace(tmp, path)
