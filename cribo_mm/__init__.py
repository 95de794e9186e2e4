# Copyright (c) cribo-mm contributors. All rights reserved.
"""cribo-mm: CrIBo as an OpenMMLab plugin.

Importing this package registers its components in the mmpretrain (and, for
segmentation datasets, mmsegmentation) registries and applies the
compatibility fixes of :mod:`cribo_mm.utils.compat`; it has no other side
effect.
"""
from .utils import compat as _compat  # noqa: F401  (applies the fixes)
from . import datasets, engine, evaluation, models  # noqa: F401,E402
from .version import __version__  # noqa: E402

__all__ = ['__version__']
