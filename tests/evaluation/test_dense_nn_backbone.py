# Copyright (c) cribo-mm contributors. All rights reserved.
"""Backbone building, checkpoint prefixes, safe loading, patch features."""
import numpy as np
import pytest
import torch

from cribo_mm.evaluation.dense_nn import (build_backbone,
                                          extract_patch_features,
                                          infer_patch_size,
                                          load_backbone_weights,
                                          select_backbone_state_dict)
from cribo_mm.utils.checkpoint_io import (UnsafeCheckpointError,
                                          load_checkpoint_file)

TINY_VIT = dict(
    type='VisionTransformer',
    arch=dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
    img_size=64,
    patch_size=16)


def test_build_and_extract_raw_and_featmap():
    backbone = build_backbone(dict(TINY_VIT))
    assert backbone.out_type == 'raw'
    assert infer_patch_size(backbone) == 16
    images = torch.randn(2, 3, 64, 96)
    feats = extract_patch_features(backbone, images, 16)
    assert feats.shape == (2, 4, 6, 32)
    featmap = build_backbone(dict(TINY_VIT, out_type='featmap'))
    featmap.load_state_dict(backbone.state_dict())
    torch.testing.assert_close(
        extract_patch_features(featmap, images, 16), feats)
    # cls_token output is turned into raw tokens
    assert build_backbone(dict(TINY_VIT, out_type='cls_token')).out_type \
        == 'raw'


def test_build_from_config_file(tmp_path):
    cfg = tmp_path / 'model.py'
    cfg.write_text(f'model = dict(type="Whatever", backbone={TINY_VIT!r})\n')
    backbone = build_backbone(str(cfg))
    assert extract_patch_features(backbone, torch.randn(1, 3, 32, 32),
                                  16).shape == (1, 2, 2, 32)
    with pytest.raises(FileNotFoundError):
        build_backbone(str(tmp_path / 'missing.py'))


def _prefixed(state, prefix):
    return {prefix + k: v for k, v in state.items()}


def test_prefix_auto_detection_prefers_the_teacher():
    teacher = build_backbone(dict(TINY_VIT)).state_dict()
    student = {k: torch.zeros_like(v) for k, v in teacher.items()}
    ckpt = dict(
        state_dict={
            **_prefixed(teacher, 'teacher.module.0.'),
            **_prefixed(student, 'backbone.'),
            'neck.weight': torch.zeros(1)
        })
    state, prefix = select_backbone_state_dict(ckpt, 'auto', teacher.keys())
    assert prefix == 'teacher.module.0.'
    assert set(state) == set(teacher)
    state, prefix = select_backbone_state_dict(ckpt, 'backbone.')
    assert prefix == 'backbone.' and float(state['cls_token'].abs().sum()) == 0
    # student-only, bare and DDP-wrapped files
    assert select_backbone_state_dict(
        {'state_dict': _prefixed(student, 'backbone.')})[1] == 'backbone.'
    assert select_backbone_state_dict(dict(teacher))[1] == ''
    assert select_backbone_state_dict({'state_dict': teacher})[1] == ''
    with pytest.raises(KeyError):
        select_backbone_state_dict(ckpt, 'nothing.')


def test_load_weights_and_safe_runner_checkpoint(tmp_path):
    from mmengine.logging import HistoryBuffer
    source = build_backbone(dict(TINY_VIT))
    runner_like = dict(
        meta=dict(epoch=3, seed=np.int64(7)),
        state_dict=_prefixed(source.state_dict(), 'teacher.module.0.'),
        message_hub=dict(
            log_scalars=dict(loss=HistoryBuffer([1.0, 0.5], [1, 1])),
            runtime_info=dict(iter=np.float64(2.0))))
    path = tmp_path / 'epoch_3.pth'
    torch.save(runner_like, path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    loaded = load_checkpoint_file(str(path))
    assert 'message_hub' in loaded
    target = build_backbone(dict(TINY_VIT))
    info = load_backbone_weights(target, str(path))
    assert info['prefix'] == 'teacher.module.0.'
    assert info['missing_keys'] == []
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)
    # a file needing a global outside the allowlist is refused
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={}, obj=_Arbitrary()), bad)
    with pytest.raises(UnsafeCheckpointError, match='_Arbitrary'):
        load_backbone_weights(target, str(bad))
    # a checkpoint without matching tensors is an error
    with pytest.raises(KeyError):
        load_backbone_weights(target, {'state_dict': {'x': torch.zeros(1)}})


class _Arbitrary:
    pass


TINY_RESNET = dict(
    type='ResNet', depth=18, stem_channels=8, base_channels=8)


def test_resnet_feature_stride_is_probed():
    """A CNN has no patch embedding: its output stride is measured."""
    backbone = build_backbone(dict(TINY_RESNET))
    assert infer_patch_size(backbone) == 32
    assert not backbone.training  # the probe leaves the mode alone
    backbone.train()
    assert infer_patch_size(backbone) == 32 and backbone.training
    dilated = build_backbone(
        dict(TINY_RESNET, strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)))
    assert infer_patch_size(dilated) == 16
    feats = extract_patch_features(dilated, torch.randn(2, 3, 64, 96), 16)
    assert feats.shape == (2, 4, 6, 64)


def test_resnet_online_backbone_of_an_orl_checkpoint():
    """ORL / BYOL checkpoints: 'backbone.' (online) is picked, not the
    target network."""
    online = build_backbone(dict(TINY_RESNET)).state_dict()
    target = {k: torch.zeros_like(v) for k, v in online.items()}
    ckpt = dict(
        state_dict={
            **_prefixed(online, 'backbone.'),
            **_prefixed(target, 'target_net.module.0.'),
        })
    backbone = build_backbone(dict(TINY_RESNET))
    info = load_backbone_weights(backbone, ckpt)
    assert info['prefix'] == 'backbone.' and info['missing_keys'] == []
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, online[k]), k


def test_unknown_stride_is_an_error():

    class Flat(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 4)

        def forward(self, x):
            return self.fc(x.mean(dim=(2, 3)))

    with pytest.raises(ValueError, match='feature stride of Flat'):
        infer_patch_size(Flat())
    assert infer_patch_size(Flat(), default=16) == 16
