# Copyright (c) cribo-mm contributors. All rights reserved.
"""CrIBoHook: the object head's teacher temperature schedule can differ
from the global head's (the reference allows it); by default they are
equal."""
import types

import pytest

from cribo_mm.engine.hooks import CrIBoHook
from cribo_mm.models.losses.cribo_loss import teacher_temperature_schedule


def _apply(hook, epoch, max_epochs=20):
    """Run before_train_epoch on a stand-in runner; return the head."""
    from mmengine.logging import MessageHub
    head = types.SimpleNamespace()
    pooling = types.SimpleNamespace()
    model = types.SimpleNamespace(head=head, object_pooling=pooling)
    runner = types.SimpleNamespace(
        model=model, epoch=epoch, max_epochs=max_epochs,
        message_hub=MessageHub.get_instance(f'temp_test_{id(hook)}'))
    hook.before_train_epoch(runner)
    return head, runner.message_hub


def test_object_head_follows_the_global_schedule_by_default():
    hook = CrIBoHook(warmup_teacher_temp=0.04, teacher_temp=0.07,
                     warmup_teacher_temp_epochs=5)
    for epoch in (0, 2, 5, 12):
        head, hub = _apply(hook, epoch)
        expected = teacher_temperature_schedule(epoch, 0.04, 0.07, 5)
        assert head.teacher_temp == pytest.approx(expected)
        assert head.teacher_temp_c == head.teacher_temp
        assert hub.get_scalar('train/teacher_temp_c').current() == \
            pytest.approx(expected)


def test_object_head_has_its_own_schedule():
    hook = CrIBoHook(warmup_teacher_temp=0.04, teacher_temp=0.07,
                     warmup_teacher_temp_epochs=10,
                     warmup_teacher_temp_c=0.02, teacher_temp_c=0.05,
                     warmup_teacher_temp_epochs_c=4)
    seen = []
    for epoch in range(12):
        head, hub = _apply(hook, epoch)
        assert head.teacher_temp == pytest.approx(
            teacher_temperature_schedule(epoch, 0.04, 0.07, 10))
        assert head.teacher_temp_c == pytest.approx(
            teacher_temperature_schedule(epoch, 0.02, 0.05, 4))
        assert hub.get_scalar('train/teacher_temp_c').current() == \
            pytest.approx(head.teacher_temp_c)
        seen.append(head.teacher_temp_c)
    assert seen[0] == pytest.approx(0.02)
    assert seen[4:] == pytest.approx([0.05] * 8)  # warm-up of 4 epochs done
    # only the final value given: the warm-up start and length are shared
    hook = CrIBoHook(warmup_teacher_temp=0.04, teacher_temp=0.07,
                     warmup_teacher_temp_epochs=10, teacher_temp_c=0.06)
    head, _ = _apply(hook, 10)
    assert head.teacher_temp_c == pytest.approx(0.06)
    head, _ = _apply(hook, 0)
    assert head.teacher_temp_c == pytest.approx(0.04)
