# Copyright (c) cribo-mm contributors. All rights reserved.
"""Location of the reference fixtures shared by the parity tests."""
import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(
    os.environ.get(
        'CRIBO_FIXTURES',
        Path(__file__).resolve().parents[2] / 'shared' / 'fixtures' /
        'cribo_reference'))


def load_fixture(name: str):
    """Load ``name`` from the fixture folder, skipping when it is absent."""
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f'reference fixture {path} not available')
    return torch.load(path, weights_only=True)
