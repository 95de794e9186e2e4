# Copyright (c) cribo-mm contributors. All rights reserved.
"""One official training step, reproduced by the CrIBo algorithm.

Fixture: ``e2e_step.pt`` with the models, loss centres and queues of
``official_checkpoint_tiny.pth`` (converted with our converter).
"""
import pytest
import torch

import cribo_mm  # noqa: F401
from cribo_mm.datasets.transforms.geometry import patch_centres
from cribo_mm.models.losses.cribo_loss import teacher_temperature_schedule
from cribo_mm.registry import MODELS
from cribo_mm.models.utils.checkpoint_formats import official_to_cribo_mm
from cribo_mm.utils.checkpoint_io import load_checkpoint_file
from tests.fixtures import FIXTURES, load_fixture


def _tiny_official_model(hp):
    return MODELS.build(
        dict(
            type='CrIBo',
            backbone=dict(
                type='VisionTransformer',
                arch=dict(
                    embed_dims=192,
                    num_layers=2,
                    num_heads=3,
                    feedforward_channels=768),
                img_size=224,
                patch_size=16,
                drop_path_rate=0.,
                out_type='raw',
                final_norm=True),
            neck=dict(
                type='CrIBoProjectionHead',
                in_channels=192,
                out_channels=hp['out_dim'],
                out_channels_objects=hp['out_dim_c'],
                hidden_channels=256,
                bottleneck_channels=256),
            head=dict(
                type='CrIBoLoss',
                out_dim=hp['out_dim'],
                out_dim_c=hp['out_dim_c']),
            object_pooling=dict(
                type='CrIBoObjectPooling',
                num_clusters=hp['n_tokens'],
                pos_alpha=hp['pos_alpha'][0],
                num_iters=hp['n_iter'],
                update_marginals=hp['update_c']),
            memory_bank=dict(
                type='CrIBoMemoryBank',
                num_images=hp['queue_size'],
                num_objects=hp['n_tokens'],
                embed_dim=192,
                normalized_matching=hp['normalized_matching'])))


@pytest.fixture(scope='module')
def step():
    fx = load_fixture('e2e_step.pt')
    path = FIXTURES / fx['checkpoint_file']
    if not path.is_file():
        pytest.skip(f'{path} not available')
    hp = fx['hparams']
    model = _tiny_official_model(hp)
    state = official_to_cribo_mm(load_checkpoint_file(str(path)))['state_dict']
    model.load_state_dict(state, strict=True)
    model.eval()  # drop path is 0 anyway; the step is deterministic
    temp = teacher_temperature_schedule(
        hp['epoch'],
        warmup_temp=hp['warmup_teacher_temp'],
        final_temp=hp['teacher_temp'],
        warmup_epochs=hp['warmup_teacher_temp_epochs'])
    model.head.teacher_temp = model.head.teacher_temp_c = temp
    model.head.crossimage_enabled = hp['epoch'] >= 1
    inputs = fx['inputs']
    images = torch.cat([inputs['images_v1'], inputs['images_v2']])
    with torch.no_grad():
        losses = model.forward_train_step(
            images, inputs['positions'], init_index=inputs['init_index'])
    return fx, model, losses


def test_positions_from_recorded_crops_match_reference():
    fx = load_fixture('e2e_step.pt')
    inputs = fx['inputs']
    boxes = torch.tensor([[[j, i, j + w, i + h] for i, j, h, w in view]
                          for view in inputs['crops']], dtype=torch.float32)
    flips = torch.tensor(inputs['flips'])
    positions = patch_centres(boxes, flips, out_size=(224, 224),
                              patch_size=16)
    torch.testing.assert_close(
        positions, inputs['positions'], atol=1e-2, rtol=0)


def test_losses_match_official_step(step):
    fx, _, losses = step
    out = fx['outputs']
    for ours, ref in (('loss_global', 'loss_d'),
                      ('loss_object_crossview', 'loss_c'),
                      ('loss_object_crossimage', 'loss_nn')):
        torch.testing.assert_close(
            losses[ours], out[ref], rtol=1e-4, atol=0)
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    torch.testing.assert_close(total, out['loss_total'], rtol=1e-4, atol=0)
    stats = out['logged_stats']
    assert float(losses['objects_per_image']) == stats['r_cnt']
    assert float(losses['cycle_consistent_ratio']) == pytest.approx(
        stats['bootstrap_centroid_ratio'])


def test_centres_and_bank_after_official_step(step):
    fx, model, _ = step
    out = fx['outputs']
    torch.testing.assert_close(
        model.head.center, out['center_after'], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        model.head.center_c, out['center_c_after'], atol=1e-5, rtol=0)
    queues = out['queues_after']
    bank = model.memory_bank
    assert torch.equal(bank.objects_per_image,
                       queues['cpv_queue'].long())
    torch.testing.assert_close(
        bank.objects, queues['centroids_queue'], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        bank.cls, queues['cls_queue'], atol=1e-5, rtol=0)
