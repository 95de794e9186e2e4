# Copyright (c) cribo-mm contributors. All rights reserved.
from .cribo_hook import CrIBoHook
from .iter_timer_hook import CrIBoIterTimerHook
from .skipped_images_hook import CrIBoSkippedImagesHook
from .sync_check_hook import CrIBoSyncCheckHook

__all__ = [
    'CrIBoHook', 'CrIBoIterTimerHook', 'CrIBoSkippedImagesHook',
    'CrIBoSyncCheckHook'
]
