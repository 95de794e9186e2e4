# Copyright (c) cribo-mm contributors. All rights reserved.
"""One summary per epoch of the images skipped by data loading."""
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, Optional

from mmengine.dist import (all_gather_object, get_rank, get_world_size,
                           is_main_process)
from mmengine.hooks import Hook

from cribo_mm.datasets.skipped_files import SKIP_RECORD_ENV, read_skipped
from cribo_mm.registry import HOOKS


@HOOKS.register_module()
class CrIBoSkippedImagesHook(Hook):
    """Count the distinct files skipped by ``skip_unreadable=True`` loading.

    Every Runner gets one by default (see :mod:`cribo_mm.utils.compat`).
    Before the run it points the environment variable
    ``CRIBO_SKIP_RECORD_DIR`` of its process (inherited by the data-loader
    workers started later) at a private temporary folder, where every
    process records the files it skipped (see
    :mod:`cribo_mm.datasets.skipped_files`). At the end of every training
    epoch the records of all workers of all ranks are merged, and rank 0
    logs one warning (distinct files skipped so far, how many are new this
    epoch, examples with their reasons) and writes the complete list to
    ``<work_dir>/skipped_images.txt`` (``path<TAB>reason`` lines). Nothing
    is logged while no file was skipped.

    Args:
        max_examples (int): Files named in the log message. Defaults to 5.
    """

    priority = 'LOW'

    def __init__(self, max_examples: int = 5) -> None:
        self.max_examples = max_examples
        self._folder: Optional[str] = None
        self._previous: Optional[str] = None
        self._reported: Dict[str, str] = {}

    def before_run(self, runner) -> None:
        self._folder = tempfile.mkdtemp(
            prefix=f'cribo_skipped_rank{get_rank()}_')
        self._previous = os.environ.get(SKIP_RECORD_ENV)
        os.environ[SKIP_RECORD_ENV] = self._folder

    def collect(self) -> Dict[str, str]:
        """Skipped files of all processes of all ranks.

        Returns:
            dict[str, str]: Path to reason.
        """
        found = read_skipped(self._folder) if self._folder else {}
        if get_world_size() > 1:
            merged: Dict[str, str] = {}
            for part in all_gather_object(found):
                for path, reason in part.items():
                    merged.setdefault(path, reason)
            found = merged
        return found

    def after_train_epoch(self, runner) -> None:
        found = self.collect()
        if not is_main_process() or not found:
            return
        new = sorted(set(found) - set(self._reported))
        self._reported = found
        if not new:
            return
        examples = '; '.join(f'{p}: {found[p]}'
                             for p in new[:self.max_examples])
        listing = osp.join(runner.work_dir, 'skipped_images.txt')
        with open(listing, 'w') as f:
            for path in sorted(found):
                f.write(f'{path}\t{found[path]}\n')
        runner.logger.warning(
            f'Epoch {runner.epoch + 1}: {len(found)} distinct unreadable '
            f'image(s) skipped so far ({len(new)} new this epoch), e.g. '
            f'{examples}. Full list: {listing}')

    def after_run(self, runner) -> None:
        if self._previous is None:
            os.environ.pop(SKIP_RECORD_ENV, None)
        else:
            os.environ[SKIP_RECORD_ENV] = self._previous
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
