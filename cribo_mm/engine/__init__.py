# Copyright (c) cribo-mm contributors. All rights reserved.
from .hooks import *  # noqa: F401,F403
from .hooks import __all__

__all__ = list(__all__)
