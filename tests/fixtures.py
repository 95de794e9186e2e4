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


def fixture_cases(name: str):
    """``pytest.param`` per case of a ``cases`` fixture file.

    A single skipped param stands in when the file is absent, so that the
    parametrised test is reported as skipped rather than failing.
    """
    path = FIXTURES / name
    if not path.is_file():
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(reason=f'fixture {path} not found'))
        ]
    cases = torch.load(path, weights_only=True)['cases']
    return [pytest.param(c, id=f'case{i}') for i, c in enumerate(cases)]
