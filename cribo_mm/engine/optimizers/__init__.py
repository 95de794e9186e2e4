# Copyright (c) cribo-mm contributors. All rights reserved.
from .amp_optim_wrapper import (CrIBoAmpOptimWrapper, enable_amp,
                                resolve_amp_settings)
from .grouped_constructor import (CrIBoOptimWrapperConstructor,
                                  merge_param_groups, regroup_optimizer_state)
from .layer_decay_constructor import CrIBoLayerDecayOptimWrapperConstructor

__all__ = [
    'CrIBoAmpOptimWrapper', 'CrIBoOptimWrapperConstructor',
    'CrIBoLayerDecayOptimWrapperConstructor', 'enable_amp',
    'merge_param_groups', 'regroup_optimizer_state', 'resolve_amp_settings'
]
