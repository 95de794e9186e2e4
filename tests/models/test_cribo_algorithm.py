# Copyright (c) cribo-mm contributors. All rights reserved.
import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import cribo_mm  # noqa: F401
from cribo_mm.registry import MODELS

TINY_VIT = dict(
    type='VisionTransformer',
    arch=dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
    img_size=64,
    patch_size=16,
    drop_path_rate=0.1,
    out_type='raw',
    final_norm=True)


def tiny_cribo(num_clusters=4, bank_images=8, **kwargs):
    cfg = dict(
        type='CrIBo',
        backbone=TINY_VIT,
        neck=dict(
            type='CrIBoProjectionHead',
            in_channels=32,
            out_channels=16,
            out_channels_objects=12,
            hidden_channels=24,
            bottleneck_channels=8),
        head=dict(type='CrIBoLoss', out_dim=16, out_dim_c=12),
        object_pooling=dict(type='CrIBoObjectPooling',
                            num_clusters=num_clusters),
        memory_bank=dict(
            type='CrIBoMemoryBank',
            num_images=bank_images,
            num_objects=num_clusters,
            embed_dim=32),
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def fake_batch(batch_size=3, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch_size):
        ds = DataSample()
        x1 = torch.randint(0, 40, (2, ), generator=g).float()
        y1 = torch.randint(0, 40, (2, ), generator=g).float()
        wh = torch.randint(48, 120, (2, ), generator=g).float()
        ds.set_field(torch.stack([x1, y1, x1 + wh, y1 + wh], 1), 'crop_bbox')
        ds.set_field(torch.rand(2, generator=g) < 0.5, 'crop_flip')
        samples.append(ds)
    views = [torch.randint(0, 255, (batch_size, 3, size, size),
                           generator=g, dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=views, data_samples=samples)


@pytest.fixture(autouse=True)
def _max_iters():
    MessageHub.get_instance('cribo_test').update_info('max_iters', 10)


def test_loss_terms_backward_and_teacher_update():
    model = tiny_cribo()
    model.train()
    assert not model.teacher.training  # teacher never in train mode
    data = model.data_preprocessor(fake_batch(), True)
    teacher_before = {k: v.clone() for k, v in
                      model.teacher.module.state_dict().items()}
    losses = model(**data, mode='loss')
    for key in ('loss_global', 'loss_object_crossview',
                'loss_object_crossimage'):
        assert torch.isfinite(losses[key]) and losses[key].dim() == 0
    assert losses['loss_global'] > 0
    assert 1 <= float(losses['objects_per_image']) <= 4
    assert 0 <= float(losses['cycle_consistent_ratio']) <= 1
    assert 0 <= float(losses['bank_search_fallbacks']) <= 1
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    total.backward()
    assert model.backbone.cls_token.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())
    # First update copies the student, which starts equal to the teacher.
    for k, v in model.teacher.module.state_dict().items():
        torch.testing.assert_close(v, teacher_before[k])
    # After a student change, the EMA moves the teacher towards it.
    with torch.no_grad():
        model.backbone.cls_token.add_(1.0)
    model(**model.data_preprocessor(fake_batch(seed=1), True), mode='loss')
    moved = model.teacher.module[0].cls_token - teacher_before['0.cls_token']
    assert torch.all(moved > 0) and torch.all(moved < 1.0)


def test_bank_receives_objects_and_counts():
    model = tiny_cribo(bank_images=8)
    data = model.data_preprocessor(fake_batch(batch_size=3), True)
    losses = model(**data, mode='loss')
    bank = model.memory_bank
    n = int(round(float(losses['objects_per_image']) * 3))
    assert int(bank.objects_per_image[:3].sum()) == n
    assert int(bank.num_inserted) == 3


def test_missing_geometry_is_a_clear_error():
    model = tiny_cribo()
    data = model.data_preprocessor(fake_batch(), True)
    data['data_samples'] = [DataSample() for _ in range(3)]
    with pytest.raises(KeyError, match='crop_bbox'):
        model(**data, mode='loss')


def test_non_finite_loss_names_term_and_keeps_bank():
    model = tiny_cribo()
    data = model.data_preprocessor(fake_batch(), True)
    model.head.student_temp = 0.  # the CLS logits become inf
    bank_before = model.memory_bank.objects.clone()
    with pytest.raises(FloatingPointError, match='loss_global'):
        model(**data, mode='loss')
    assert torch.equal(model.memory_bank.objects, bank_before)


def test_dino_baseline_has_only_the_global_term():
    model = tiny_cribo(object_terms=False)
    data = model.data_preprocessor(fake_batch(), True)
    bank_before = model.memory_bank.objects.clone()
    losses = model(**data, mode='loss')
    assert losses['loss_global'] > 0
    assert float(losses['loss_object_crossview']) == 0
    assert float(losses['loss_object_crossimage']) == 0
    assert torch.equal(model.memory_bank.objects, bank_before)
    losses['loss_global'].backward()
    assert model.neck.last_layer_c.parametrizations.weight.original1.grad \
        is None


def test_autocast_keeps_clustering_and_losses_in_fp32():
    model = tiny_cribo()
    data = model.data_preprocessor(fake_batch(), True)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        losses = model(**data, mode='loss')
    for key in ('loss_global', 'loss_object_crossview',
                'loss_object_crossimage'):
        assert losses[key].dtype == torch.float32
        assert torch.isfinite(losses[key])
    # the bank stores fp32 teacher objects
    assert model.memory_bank.objects.dtype == torch.float32


@pytest.mark.parametrize('override, message', [
    (dict(backbone=dict(TINY_VIT, out_type='featmap')), "out_type='raw'"),
    (dict(memory_bank=dict(type='CrIBoMemoryBank', num_images=8,
                           num_objects=4, embed_dim=16)),
     'memory_bank.embed_dim=16'),
    (dict(object_pooling=dict(type='CrIBoObjectPooling', num_clusters=17),
          memory_bank=dict(type='CrIBoMemoryBank', num_images=8,
                           num_objects=17, embed_dim=32)),
     'larger than the 16 patch tokens'),
    (dict(head=dict(type='CrIBoLoss', out_dim=16, out_dim_c=13)),
     'out_dim_c=13'),
])
def test_bad_configuration_fails_at_build(override, message):
    with pytest.raises(ValueError, match=message):
        tiny_cribo(**override)


def test_every_student_parameter_gets_a_gradient_after_warmup():
    model = tiny_cribo()
    model.train()
    for seed in range(2):  # the second step retrieves real bank entries
        model.zero_grad()
        losses = model(**model.data_preprocessor(fake_batch(seed=seed),
                                                 True), mode='loss')
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    missing = [n for n, p in model.named_parameters()
               if not n.startswith('teacher.') and p.requires_grad
               and p.grad is None]
    assert missing == []
    assert all(p.grad is None for p in model.teacher.parameters())
