# Copyright (c) cribo-mm contributors. All rights reserved.
"""Shared fixtures of the data pipeline tests."""

import numpy as np
import pytest


@pytest.fixture(scope='session')
def mmpretrain_scope():
    """Register everything and make 'mmpretrain' the default scope."""
    from mmengine.registry import init_default_scope

    import cribo_mm.datasets  # noqa: F401
    init_default_scope('mmpretrain')
    return 'mmpretrain'


@pytest.fixture
def coord_image():
    """Factory of float32 images whose channels are (x, y, 0) per pixel."""

    def make(h, w):
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return np.stack([xs, ys, np.zeros_like(xs)], axis=-1)

    return make
