# Copyright (c) cribo-mm contributors. All rights reserved.
import mmpretrain.models  # noqa: F401  (mmpretrain components first)

from .algorithms import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403
from .algorithms import __all__ as _algorithms
from .backbones import __all__ as _backbones
from .losses import __all__ as _losses
from .necks import __all__ as _necks
from .utils import __all__ as _utils

__all__ = [*_algorithms, *_backbones, *_losses, *_necks, *_utils]
