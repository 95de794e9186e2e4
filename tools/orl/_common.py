# Copyright (c) cribo-mm contributors. All rights reserved.
"""Shared set-up of the ORL stage-2 tools (not a command)."""
import json
import os
import os.path as osp
import sys

# Running from a checkout without installing: make ``cribo_mm`` importable.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def setup():
    """Register cribo_mm and make 'mmpretrain' the default scope."""
    from mmengine.registry import init_default_scope

    import cribo_mm  # noqa: F401
    init_default_scope('mmpretrain')


def load_config(path, options=None):
    """Read a config, apply ``--cfg-options``.

    Args:
        path (str): Config file.
        options (dict, optional): Dotted overrides.

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def dump_json(obj, path):
    """Write ``obj`` to ``path`` atomically (parent folders created)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(obj, f)
    os.replace(tmp, path)
