# Copyright (c) cribo-mm contributors. All rights reserved.
from .hooks import *  # noqa: F401,F403
from .hooks import __all__ as _hooks_all
from .optimizers import *  # noqa: F401,F403
from .optimizers import __all__ as _optimizers_all

__all__ = list(_hooks_all) + list(_optimizers_all)
