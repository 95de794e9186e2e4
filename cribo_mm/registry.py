# Copyright (c) cribo-mm contributors. All rights reserved.
"""The registries cribo-mm registers into.

All pretraining-side components live in mmpretrain's registries, so configs
with ``default_scope='mmpretrain'`` reach them (and every mmpretrain, mmcv and
mmengine component) without a prefix, and MMSegmentation configs reach them as
``'mmpretrain.<Name>'``. This module is the only place that names them.
"""
from mmpretrain.registry import (DATASETS, HOOKS, METRICS, MODELS,
                                 OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                                 TRANSFORMS)

__all__ = [
    'DATASETS', 'HOOKS', 'METRICS', 'MODELS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'OPTIM_WRAPPERS', 'TRANSFORMS'
]
