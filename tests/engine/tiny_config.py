# Copyright (c) cribo-mm contributors. All rights reserved.
"""A tiny CrIBo run derived from the demo config, for Runner-level tests."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / 'configs' / 'cribo' / 'vit-t16_demo.py'

TINY_OPTIONS = [
    'model.backbone.arch.embed_dims=32',
    'model.backbone.arch.num_layers=2',
    'model.backbone.arch.num_heads=2',
    'model.backbone.arch.feedforward_channels=64',
    'model.neck.in_channels=32',
    'model.neck.out_channels=64',
    'model.neck.out_channels_objects=64',
    'model.neck.hidden_channels=64',
    'model.neck.bottleneck_channels=16',
    'model.head.out_dim=64',
    'model.head.out_dim_c=64',
    'model.object_pooling.num_clusters=4',
    'model.memory_bank.num_objects=4',
    'model.memory_bank.num_images=12',
    'model.memory_bank.embed_dim=32',
    'train_dataloader.batch_size=4',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.num_train=16',
    'train_dataloader.dataset.num_val=4',
    'train_dataloader.dataset.image_size=[96,128]',
    'train_cfg.max_epochs=2',
    'default_hooks.logger.interval=1',
    'log_processor.window_size=1',
]


def import_tool(relpath, name):
    """Import a script of the repository (e.g. ``tools/train.py``).

    Args:
        relpath (str | Path): The script's path relative to the repository
            root, or an absolute path.
        name (str): The module name to give it.

    Returns:
        module: The executed script as a module (its ``__main__`` block not
        run).
    """
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(args, cwd=ROOT, timeout=600, extra_env=None):
    """Run a command line with the test interpreter, fail with its output."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    env.update(extra_env or {})
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout)
    assert proc.returncode == 0, (
        f'{" ".join(map(str, args))} failed ({proc.returncode}):\n'
        f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc


def train(work_dir, *extra, options=()):
    return run_tool([
        sys.executable, str(ROOT / 'tools' / 'train.py'), str(DEMO_CONFIG),
        '--work-dir', str(work_dir), *extra, '--cfg-options', *TINY_OPTIONS,
        *options
    ])


def logged_scalars(work_dir):
    """Per-iteration scalar records of the latest run in ``work_dir``."""
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]
