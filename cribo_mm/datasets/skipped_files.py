# Copyright (c) cribo-mm contributors. All rights reserved.
"""A record of the files skipped by data loading, shared across processes.

Data-loader workers are separate processes and a skipped sample never
reaches the main process (mmengine's ``BaseDataset`` draws another index
instead), so skipped files are reported out of band: every process appends
one JSON line per distinct file to its own file in the folder named by the
environment variable ``CRIBO_SKIP_RECORD_DIR`` (set by
:class:`cribo_mm.engine.hooks.CrIBoSkippedImagesHook` before the workers
start; they inherit it). The hook reads the folder at the end of every
epoch, so files are counted once however many workers, epochs or retries
met them.
"""
import json
import os
import os.path as osp
import socket
from typing import Dict

__all__ = [
    'SKIP_RECORD_ENV', 'record_skipped', 'read_skipped', 'skipped_in_process'
]

#: Folder where processes record the files they skipped.
SKIP_RECORD_ENV = 'CRIBO_SKIP_RECORD_DIR'

# distinct files skipped by this process (inherited by forked workers)
_SKIPPED: Dict[str, str] = {}


def record_skipped(filename: str, reason: str) -> bool:
    """Note that ``filename`` was skipped.

    Args:
        filename (str): The skipped file.
        reason (str): Why (one line).

    Returns:
        bool: True the first time this process skips ``filename``.
    """
    if filename in _SKIPPED:
        return False
    _SKIPPED[filename] = reason
    folder = os.environ.get(SKIP_RECORD_ENV)
    if folder and osp.isdir(folder):
        record = osp.join(
            folder, f'skipped-{socket.gethostname()}-{os.getpid()}.jsonl')
        # one short line per write: appends of whole lines do not interleave
        with open(record, 'a') as f:
            f.write(json.dumps(dict(path=filename, reason=reason)) + '\n')
    return True


def skipped_in_process() -> Dict[str, str]:
    """Files skipped by this process so far.

    Returns:
        dict[str, str]: Path to reason.
    """
    return dict(_SKIPPED)


def read_skipped(folder: str) -> Dict[str, str]:
    """Every file recorded in ``folder`` by any process.

    Args:
        folder (str): The record folder.

    Returns:
        dict[str, str]: Path to reason (one entry per distinct path).
    """
    found: Dict[str, str] = {}
    if not osp.isdir(folder):
        return found
    for name in sorted(os.listdir(folder)):
        if not name.endswith('.jsonl'):
            continue
        with open(osp.join(folder, name)) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line still being written
                found.setdefault(entry['path'], entry['reason'])
    return found
