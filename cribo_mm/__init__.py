"""cribo-mm: CrIBo as an OpenMMLab plugin.

Importing this package registers its components in the mmpretrain and
mmsegmentation registries and applies the compatibility fixes of
:mod:`cribo_mm.utils.compat`; it has no other side effect.
"""
from .version import __version__
from .utils import compat as _compat  # noqa: F401  (applies compat fixes)

__all__ = ['__version__']
