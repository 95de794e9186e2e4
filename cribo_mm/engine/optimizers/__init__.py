# Copyright (c) cribo-mm contributors. All rights reserved.
from .layer_decay_constructor import CrIBoLayerDecayOptimWrapperConstructor

__all__ = ['CrIBoLayerDecayOptimWrapperConstructor']
