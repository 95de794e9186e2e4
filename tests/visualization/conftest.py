# Copyright (c) cribo-mm contributors. All rights reserved.
"""Fixtures of the analysis-tool tests: demo scenes in a temporary cache
and a tiny random CrIBo checkpoint built from the demo config."""
import argparse
import sys

import numpy as np
import pytest
import torch

from tests.engine.tiny_config import (DEMO_CONFIG, ROOT, TINY_OPTIONS, import_tool)

TOOLS = ROOT / 'tools' / 'analysis'


def tiny_cfg_options() -> dict:
    """The tiny overrides of the demo config as a ``--cfg-options`` dict."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    return parser.parse_args(['--o', *TINY_OPTIONS]).o


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """A random tiny CrIBo model of the demo config, saved like a Runner
    checkpoint (``state_dict`` + ``meta``)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from cribo_mm.registry import MODELS
    from cribo_mm.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.merge_from_dict(tiny_cfg_options())
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, str(path))
    return str(path)


def load_tool(name: str):
    """Import ``tools/analysis/<name>.py`` as a module."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return import_tool(TOOLS / f'{name}.py', name)


def assert_not_blank(image: np.ndarray, min_colors: int = 40) -> None:
    """Pixel statistics of a real picture (not one flat colour)."""
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.std() > 20, f'flat picture (std {image.std():.1f})'
    colors = np.unique(image.reshape(-1, 3), axis=0).shape[0]
    assert colors >= min_colors, f'only {colors} colours'
    white = (image.min(axis=2) > 245).mean()
    assert white < 0.9, f'{100 * white:.0f}% white'
