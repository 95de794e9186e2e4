# Copyright (c) cribo-mm contributors. All rights reserved.
from .cribo_hook import CrIBoHook

__all__ = ['CrIBoHook']
