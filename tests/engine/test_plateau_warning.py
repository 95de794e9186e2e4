# Copyright (c) cribo-mm contributors. All rights reserved.
"""CrIBoHook warns when the teacher sits on the uniform plateau for a whole
epoch (after warm-up), and only then."""
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub

from cribo_mm.engine.hooks.cribo_hook import CrIBoHook, on_uniform_plateau

LOG_K = math.log(256)


class _Logger:

    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)


def _runner():
    model = SimpleNamespace(
        head=SimpleNamespace(), object_pooling=SimpleNamespace())
    return SimpleNamespace(
        model=model,
        epoch=0,
        max_epochs=10,
        logger=_Logger(),
        message_hub=MessageHub.get_instance('plateau_test'))


def _outputs(ent_global, ent_object=None):
    out = dict(
        loss=torch.tensor(5.),
        teacher_entropy_global=torch.tensor(ent_global),
        log_out_dim_global=torch.tensor(LOG_K))
    if ent_object is not None:
        out.update(
            teacher_entropy_object=torch.tensor(ent_object),
            log_out_dim_object=torch.tensor(LOG_K))
    return out


def _run_epoch(hook, runner, epoch, entropies):
    runner.epoch = epoch
    hook.before_train_epoch(runner)
    for i, ent in enumerate(entropies):
        hook.after_train_iter(runner, i, None, _outputs(*ent))
    hook.after_train_epoch(runner)
    return runner.logger.warnings


def test_on_uniform_plateau():
    assert on_uniform_plateau(LOG_K, LOG_K, 0.01)
    assert on_uniform_plateau(0.995 * LOG_K, LOG_K, 0.01)
    assert not on_uniform_plateau(0.98 * LOG_K, LOG_K, 0.01)


def test_warns_for_a_whole_epoch_on_the_plateau():
    hook = CrIBoHook(plateau_rtol=0.01, plateau_start_epoch=1)
    runner = _runner()
    flat = [(LOG_K - 1e-3, LOG_K - 2e-3)] * 6
    # epoch 0 is warm-up: no warning even on the plateau
    assert _run_epoch(hook, runner, 0, flat) == []
    warnings = _run_epoch(hook, runner, 1, flat)
    assert len(warnings) == 1
    msg = warnings[0]
    assert 'epoch 2' in msg and 'all 6 iterations' in msg
    assert 'global head' in msg and 'object head' in msg
    assert f'{LOG_K:.3f}' in msg
    for knob in ('teacher temperature', 'base_momentum', 'out_dim',
                 'freeze_last_layer_epochs'):
        assert knob in msg


def test_no_warning_once_the_teacher_leaves_the_plateau():
    hook = CrIBoHook(plateau_rtol=0.01, plateau_start_epoch=1)
    runner = _runner()
    # one iteration off the plateau is enough to not call it stuck
    left = [(LOG_K - 1e-3, )] * 5 + [(0.9 * LOG_K, )]
    assert _run_epoch(hook, runner, 1, left) == []
    # a healthy run far below log K
    assert _run_epoch(hook, runner, 2, [(2.0, 1.5)] * 4) == []
    # the counts restart each epoch: a plateau epoch after a healthy one
    warnings = _run_epoch(hook, runner, 3, [(LOG_K, 3.0)] * 4)
    assert len(warnings) == 1
    assert 'global head' in warnings[0]
    assert 'object head' not in warnings[0]  # that head has learned
    # runs that log no entropy (other models) never warn
    runner.epoch = 4
    hook.before_train_epoch(runner)
    hook.after_train_iter(runner, 0, None, dict(loss=torch.tensor(1.)))
    hook.after_train_iter(runner, 1, None, None)
    hook.after_train_epoch(runner)
    assert len(runner.logger.warnings) == 1


def test_rejects_bad_tolerance():
    with pytest.raises(ValueError, match='plateau_rtol'):
        CrIBoHook(plateau_rtol=0.)
