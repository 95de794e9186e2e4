# Copyright (c) cribo-mm contributors. All rights reserved.
"""tools/dist_train.sh with two gloo processes on CPU."""
import json
import socket
import sys

import pytest
import torch
from mmengine.config import Config

from cribo_mm.utils.compat import load_local_checkpoint
from tests.engine.tiny_config import (DEMO_CONFIG, ROOT, TINY_OPTIONS,
                                      logged_scalars, run_tool)

pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_training_keeps_bank_and_centres_in_sync(tmp_path):
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.custom_hooks.append(dict(type='CrIBoSyncCheckHook', record=True))
    config = tmp_path / 'demo_with_sync_check.py'
    cfg.dump(str(config))
    run_tool(
        ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(config), '2',
         '--work-dir', str(tmp_path), '--cfg-options', *TINY_OPTIONS,
         'train_dataloader.dataset.num_train=32'],
        extra_env=dict(PYTHON=sys.executable, PORT=str(_free_port())),
        timeout=900)
    # 32 images, 2 ranks x 4 per step: 4 steps per epoch, 2 epochs
    with open(tmp_path / 'sync_check.json') as f:
        record = json.load(f)
    assert record == dict(checks=8, world_size=2)
    ckpt = load_local_checkpoint(str(tmp_path / 'epoch_2.pth'))
    state = ckpt['state_dict']
    # every step inserted the objects of both ranks (8 images)
    assert int(state['memory_bank.num_inserted']) == 64
    assert torch.all(state['memory_bank.objects_per_image'] >= 1)
    records = [r for r in logged_scalars(tmp_path) if 'loss' in r]
    assert len(records) == 8
