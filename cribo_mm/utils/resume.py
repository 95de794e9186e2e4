# Copyright (c) cribo-mm contributors. All rights reserved.
"""Choosing the checkpoint that ``--resume`` (without a path) continues from.

mmengine's automatic resume reads ``<work_dir>/last_checkpoint`` and, when
it is missing, logs ``Auto resumed from the latest checkpoint None`` and
trains from scratch; when it names a missing or truncated file the run dies
deep inside ``torch.load``. :func:`resolve_auto_resume` makes both cases
explicit: a warning that training starts from scratch, or an error naming
the broken file and the newest intact checkpoint of the work dir.
"""
import glob
import os.path as osp
import zipfile
from typing import Optional, Tuple

from mmengine.logging import print_log

__all__ = [
    'BrokenCheckpointError', 'check_resume_file', 'checkpoint_is_intact',
    'newest_intact_checkpoint', 'resolve_auto_resume'
]


class BrokenCheckpointError(RuntimeError):
    """The checkpoint to resume from is missing or damaged.

    Args:
        filename (str): The file at fault.
        reason (str): What is wrong with it (a phrase after the name).
        fallback (str, optional): The newest intact checkpoint of the work
            dir, if any.
    """

    def __init__(self, filename: str, reason: str,
                 fallback: Optional[str]) -> None:
        self.filename, self.reason, self.fallback = filename, reason, fallback
        hint = (f'resume from the newest intact checkpoint with '
                f'--resume {fallback}' if fallback else
                'no intact checkpoint was found in the work dir; train '
                'without --resume to start from scratch')
        super().__init__(f'--resume: {filename!r} {reason}; {hint}')

    def __reduce__(self):
        return (self.__class__, (self.filename, self.reason, self.fallback))


def checkpoint_is_intact(filename: str) -> Tuple[bool, str]:
    """Cheap structural check of a checkpoint written by ``torch.save``.

    A file of the zip format (torch >= 1.6) is intact when its central
    directory (at the very end of the file, so truncation destroys it) can
    be read, it holds a ``data.pkl`` record, and every record starts inside
    the file. The data is not decompressed or unpickled: the check costs a
    few reads whatever the size of the file.

    Args:
        filename (str): Path of the checkpoint.

    Returns:
        tuple[bool, str]: Whether it looks intact, and if not, why (a
        phrase such as ``'does not exist'``).
    """
    if not osp.exists(filename):
        return False, 'does not exist'
    if not osp.isfile(filename):
        return False, 'is not a regular file'
    size = osp.getsize(filename)
    if size == 0:
        return False, 'is empty'
    try:
        with zipfile.ZipFile(filename) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        return False, (f'is truncated or corrupt (not a complete torch '
                       f'checkpoint archive: {e}; size {size} bytes)')
    if not any(i.filename.endswith('data.pkl') for i in infos):
        return False, 'is a zip archive without data.pkl (not a checkpoint)'
    bad = [i.filename for i in infos if i.header_offset >= size]
    if bad:
        return False, f'is truncated (record {bad[0]!r} lies past its end)'
    return True, ''


def newest_intact_checkpoint(work_dir: str,
                             exclude: Optional[str] = None) -> Optional[str]:
    """The most recently modified intact ``*.pth`` file of a work dir.

    Args:
        work_dir (str): Folder to search (not recursively).
        exclude (str, optional): A path to leave out.

    Returns:
        str | None: Its path, or None when there is none.
    """
    files = glob.glob(osp.join(glob.escape(work_dir), '*.pth'))
    files.sort(key=lambda p: (osp.getmtime(p), p), reverse=True)
    skip = osp.realpath(exclude) if exclude else None
    for path in files:
        if skip and osp.realpath(path) == skip:
            continue
        if checkpoint_is_intact(path)[0]:
            return path
    return None


def _last_checkpoint_target(work_dir: str) -> Optional[str]:
    """The path written in ``<work_dir>/last_checkpoint`` (None if absent)."""
    record = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(record):
        return None
    with open(record) as f:
        target = f.read().strip()
    if not target:
        return ''
    if not osp.isabs(target) and not osp.exists(target):
        # written relative to another working directory
        candidate = osp.join(work_dir, osp.basename(target))
        if osp.exists(candidate):
            return candidate
    return target


def resolve_auto_resume(work_dir: str) -> Optional[str]:
    """The checkpoint that ``--resume`` without a path continues from.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        str | None: The intact checkpoint named by ``last_checkpoint``, or
        None when there is nothing to resume (no work dir or no
        ``last_checkpoint``); a warning then says that training starts
        from scratch.

    Raises:
        BrokenCheckpointError: ``last_checkpoint`` is empty or names a
            missing, empty or truncated file; the message names it and the
            newest intact checkpoint of the work dir.
    """
    target = _last_checkpoint_target(work_dir)
    if target is None:
        found = newest_intact_checkpoint(work_dir) if osp.isdir(
            work_dir) else None
        hint = (f' ({found} exists: pass it as --resume {found} to continue '
                'from it)' if found else '')
        print_log(
            f'--resume: nothing to resume in {work_dir!r} (no '
            f'last_checkpoint file); training starts from scratch{hint}.',
            logger='current',
            level=30)
        return None
    record = osp.join(work_dir, 'last_checkpoint')
    if target == '':
        raise BrokenCheckpointError(record,
                                    'is empty (it should name a checkpoint)',
                                    newest_intact_checkpoint(work_dir))
    intact, reason = checkpoint_is_intact(target)
    if not intact:
        raise BrokenCheckpointError(
            target, f'(named by {record}) {reason}',
            newest_intact_checkpoint(work_dir, exclude=target))
    return target


def check_resume_file(filename: str, work_dir: str) -> None:
    """Fail early when an explicit ``--resume PATH`` is not an intact
    checkpoint.

    Args:
        filename (str): The given path.
        work_dir (str): The run's work dir, searched for an alternative.

    Raises:
        BrokenCheckpointError: The file is missing, empty or truncated.
    """
    intact, reason = checkpoint_is_intact(filename)
    if not intact:
        fallback = newest_intact_checkpoint(
            work_dir, exclude=filename) if osp.isdir(work_dir) else None
        raise BrokenCheckpointError(filename, reason, fallback)
