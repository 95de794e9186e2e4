# Copyright (c) cribo-mm contributors. All rights reserved.
import os

import pytest
import torch

# Two CPU cores on CI: keep intra-op threads predictable.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope='session', autouse=True)
def _demo_cache(tmp_path_factory):
    """Generate demo scenes into a temporary cache, never into ``~``.

    Child processes started by the tests inherit the variable.
    """
    old = os.environ.get('CRIBO_DEMO_ROOT')
    os.environ['CRIBO_DEMO_ROOT'] = str(tmp_path_factory.mktemp('demo_cache'))
    yield
    if old is None:
        os.environ.pop('CRIBO_DEMO_ROOT', None)
    else:
        os.environ['CRIBO_DEMO_ROOT'] = old
