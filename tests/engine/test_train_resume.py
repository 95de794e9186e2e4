# Copyright (c) cribo-mm contributors. All rights reserved.
"""End-to-end: tools/train.py with a real Runner, checkpoints and resume."""
import shutil

import pytest
import torch

from cribo_mm.utils.compat import load_local_checkpoint
from tests.engine.tiny_config import logged_scalars, train

pytestmark = pytest.mark.slow

TERMS = ('loss_global', 'loss_object_crossview', 'loss_object_crossimage')
# the demo recipe does not freeze the last layers; these runs do in epoch 0
# to check that the hook's schedule survives a resume
FREEZE = ['custom_hooks.0.freeze_last_layer_epochs=1']


def _by_iter(records):
    return {r['iter']: r for r in records if 'loss' in r}


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('full')
    train(work, options=FREEZE)
    return work


def test_training_writes_checkpoints_and_logs(full_run):
    ckpt = load_local_checkpoint(str(full_run / 'epoch_2.pth'))
    assert ckpt['meta']['iter'] == 8 and ckpt['meta']['epoch'] == 2
    state = ckpt['state_dict']
    assert int(state['teacher.steps']) == 8
    assert int(state['memory_bank.num_inserted']) == 32
    assert 'cribo_rng_state' in ckpt['meta']
    records = _by_iter(logged_scalars(full_run))
    assert sorted(records) == list(range(1, 9))
    # the cross-image term is off in epoch 0 and on afterwards
    assert all(records[i]['loss_object_crossimage'] == 0 for i in (1, 4))
    assert any(records[i]['loss_object_crossimage'] > 0 for i in (5, 8))
    assert all(records[i]['last_layer_frozen'] == 1 for i in range(1, 5))
    assert all(records[i]['last_layer_frozen'] == 0 for i in range(5, 9))


def test_resume_reproduces_uninterrupted_run(full_run, tmp_path):
    shutil.copy(full_run / 'epoch_1.pth', tmp_path / 'epoch_1.pth')
    train(tmp_path, '--resume', str(tmp_path / 'epoch_1.pth'), options=FREEZE)
    full = _by_iter(logged_scalars(full_run))
    resumed = _by_iter(logged_scalars(tmp_path))
    assert sorted(resumed) == [5, 6, 7, 8]
    for it in resumed:
        for key in TERMS + ('lr', 'teacher_temp', 'objects_per_image'):
            assert resumed[it][key] == pytest.approx(full[it][key],
                                                     rel=1e-5, abs=1e-6), \
                (it, key)
    a = load_local_checkpoint(str(full_run / 'epoch_2.pth'))['state_dict']
    b = load_local_checkpoint(str(tmp_path / 'epoch_2.pth'))['state_dict']
    for key in ('memory_bank.objects', 'memory_bank.objects_per_image',
                'head.center_c'):
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    # resuming left the checkpoint it started from untouched
    assert (tmp_path / 'epoch_1.pth').read_bytes() == \
        (full_run / 'epoch_1.pth').read_bytes()


def test_resume_from_one_group_per_parameter(full_run, tmp_path):
    """A checkpoint of mmengine's default constructor (one optimizer group
    per parameter, as cribo-mm saved before the merged groups) resumes
    into the merged groups and continues as the uninterrupted run."""
    old = tmp_path / 'old'
    train(old, options=FREEZE + [
        'optim_wrapper.constructor=DefaultOptimWrapperConstructor'])
    saved = load_local_checkpoint(str(old / 'epoch_1.pth'))['optimizer']
    assert len(saved['param_groups']) > 2  # one per trainable tensor
    new = tmp_path / 'new'
    new.mkdir()
    shutil.copy(old / 'epoch_1.pth', new / 'epoch_1.pth')
    proc = train(new, '--resume', str(new / 'epoch_1.pth'), options=FREEZE)
    assert 'regrouped into the 2 merged groups' in proc.stdout + proc.stderr
    full = _by_iter(logged_scalars(full_run))
    resumed = _by_iter(logged_scalars(new))
    assert sorted(resumed) == [5, 6, 7, 8]
    for it in resumed:
        for key in TERMS + ('lr', ):
            assert resumed[it][key] == pytest.approx(full[it][key],
                                                     rel=1e-4, abs=1e-5), \
                (it, key)
    ckpt = load_local_checkpoint(str(new / 'epoch_2.pth'))
    assert len(ckpt['optimizer']['param_groups']) == 2


def test_bank_side_file_keeps_checkpoint_small(tmp_path):
    train(tmp_path, options=[
        'custom_hooks.0.bank_in_checkpoint=False',
        'train_cfg.max_epochs=1'
    ])
    ckpt = load_local_checkpoint(str(tmp_path / 'epoch_1.pth'))
    assert not any(k.startswith('memory_bank.') for k in ckpt['state_dict'])
    side = tmp_path / ckpt['meta']['memory_bank_file']
    bank = torch.load(side, weights_only=True)
    assert bank['memory_bank.objects'].shape == (2, 4 * 12, 32)
    # resuming reads the bank back from the side file
    train(tmp_path, '--resume',
          options=['custom_hooks.0.bank_in_checkpoint=False'])
    resumed = load_local_checkpoint(str(tmp_path / 'epoch_2.pth'))
    assert resumed['meta']['iter'] == 8


def test_non_finite_loss_stops_and_keeps_last_checkpoint(full_run, tmp_path):
    shutil.copy(full_run / 'epoch_1.pth', tmp_path / 'epoch_1.pth')
    before = (tmp_path / 'epoch_1.pth').read_bytes()
    with pytest.raises(AssertionError) as err:
        # a zero student temperature makes the CLS logits infinite
        train(tmp_path, '--resume', str(tmp_path / 'epoch_1.pth'),
              options=['model.head.student_temp=0.0'])
    message = str(err.value)
    assert 'non-finite CrIBo loss at iteration 4' in message
    assert 'loss_global' in message
    assert (tmp_path / 'epoch_1.pth').read_bytes() == before
    assert not (tmp_path / 'epoch_2.pth').exists()
