# Copyright (c) cribo-mm contributors. All rights reserved.
import pytest


@pytest.fixture(autouse=True, scope='module')
def mmpretrain_scope():
    """Register everything and make 'mmpretrain' the default scope."""
    from mmengine.registry import init_default_scope

    import cribo_mm  # noqa: F401
    init_default_scope('mmpretrain')
    return 'mmpretrain'
