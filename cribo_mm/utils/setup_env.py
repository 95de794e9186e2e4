# Copyright (c) cribo-mm contributors. All rights reserved.
from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all cribo-mm (and mmpretrain) components.

    Useful for scripts and notebooks that build components without going
    through a config's ``custom_imports``.

    Args:
        init_default_scope (bool): Whether to set ``mmpretrain`` as the
            default scope when none is set yet. Defaults to True.
    """
    import mmpretrain.utils

    import cribo_mm.datasets  # noqa: F401
    import cribo_mm.engine  # noqa: F401
    import cribo_mm.models  # noqa: F401
    mmpretrain.utils.register_all_modules(init_default_scope=False)
    if init_default_scope and DefaultScope.get_current_instance() is None:
        DefaultScope.get_instance('mmpretrain', scope_name='mmpretrain')
