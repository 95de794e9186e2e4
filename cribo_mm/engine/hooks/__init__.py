# Copyright (c) cribo-mm contributors. All rights reserved.
from .cribo_hook import CrIBoHook
from .sync_check_hook import CrIBoSyncCheckHook

__all__ = ['CrIBoHook', 'CrIBoSyncCheckHook']
