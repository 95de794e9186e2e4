# Copyright (c) cribo-mm contributors. All rights reserved.
"""Weights of another architecture stop ``load_from`` / ``--resume`` /
``init_cfg`` with an error instead of mmengine's warning."""
import os
import sys
import warnings

import pytest
import torch

from cribo_mm.utils import checkpoint_io as cio
from cribo_mm.utils import weight_fit
from cribo_mm.utils.weight_fit import (CheckpointMismatchError,
                                       check_state_dict_fit)
from tests.engine.tiny_config import DEMO_CONFIG, ROOT, TINY_OPTIONS

# the hand-built payloads use pickle protocol 4, which torch warns about
pytestmark = pytest.mark.filterwarnings('ignore:Detected pickle protocol')

VIT_S_CONFIG = (ROOT / 'configs' / 'benchmarks' / 'mmsegmentation' /
                'vit-s16_linear_8xb1-80k_voc12aug-512x512.py')


@pytest.fixture(autouse=True)
def _defaults(monkeypatch):
    # set (not deleted) so that monkeypatch restores it after tests that
    # call request_unsafe_load()
    monkeypatch.setenv(cio.UNSAFE_LOAD_ENV, '0')
    monkeypatch.delenv(weight_fit.MAX_SHAPE_MISMATCHES_ENV, raising=False)


class _Net(torch.nn.Module):

    def __init__(self, width=4):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(width, width) for _ in range(4))


def test_fit_check_accepts_partial_and_few_mismatches():
    net = _Net()
    state = _Net().state_dict()
    state['layers.0.weight'] = torch.zeros(5, 4)
    state['layers.0.bias'] = torch.zeros(5)
    del state['layers.3.bias']
    state['extra'] = torch.zeros(1)
    info = check_state_dict_fit(net, state)
    assert info['matched'] == 7 and info['missing'] == 1
    assert info['unexpected'] == 1 and len(info['shape_mismatches']) == 2


def test_fit_check_refuses_disjoint_keys():
    with pytest.raises(CheckpointMismatchError, match='none of the 2') as e:
        check_state_dict_fit(_Net(), {'conv1.weight': torch.zeros(1),
                                      'fc.bias': torch.zeros(1)},
                             source='r50.pth')
    assert 'r50.pth' in str(e.value) and 'layers.0.weight' in str(e.value)


def test_fit_check_refuses_many_shape_mismatches(monkeypatch):
    state = _Net(width=8).state_dict()
    with pytest.raises(CheckpointMismatchError, match='8 of the 8') as e:
        check_state_dict_fit(_Net(), state)
    assert 'layers.0.weight: checkpoint (8, 8) vs model (4, 4)' in str(
        e.value)
    assert check_state_dict_fit(_Net(), state, max_shape_mismatches=8)
    monkeypatch.setenv(weight_fit.MAX_SHAPE_MISMATCHES_ENV, '10')
    assert check_state_dict_fit(_Net(), state)


def _tiny_cribo():
    from mmengine.config import Config, DictAction
    from mmengine.registry import DefaultScope

    from cribo_mm.registry import MODELS
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.merge_from_dict({
        key: DictAction._parse_iterable(value)
        for key, value in (o.split('=', 1) for o in TINY_OPTIONS)
    })
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def resnet_file(tmp_path_factory):
    from mmpretrain.models import ResNet
    path = tmp_path_factory.mktemp('r18') / 'resnet18.pth'
    state = {f'backbone.{k}': v for k, v in ResNet(depth=18).state_dict()
             .items()}
    torch.save(dict(meta=dict(epoch=1), state_dict=state), path)
    return str(path)


def test_resnet_checkpoint_into_the_vit_cribo_model(resnet_file):
    """The model-loading step of Runner.resume / load_from."""
    from mmengine.runner import load_checkpoint
    model = _tiny_cribo()
    before = model.backbone.cls_token.detach().clone()
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, resnet_file, map_location='cpu')
    message = str(info.value)
    assert 'none of the' in message and 'resnet18.pth' in message
    assert 'backbone.bn1.bias' in message
    assert 'backbone.cls_token' in message
    assert torch.equal(model.backbone.cls_token, before)


def _vit_backbone_file(path, embed_dims, num_layers, img_size=224):
    from mmpretrain.models import VisionTransformer

    from cribo_mm.models.utils.checkpoint_formats import \
        make_backbone_checkpoint
    vit = VisionTransformer(
        arch=dict(
            embed_dims=embed_dims,
            num_layers=num_layers,
            num_heads=embed_dims // 32,
            feedforward_channels=4 * embed_dims),
        img_size=img_size,
        patch_size=16,
        out_type='raw',
        final_norm=True)
    cio.save_checkpoint(make_backbone_checkpoint(vit.state_dict()), path)
    return vit


def _segmentor(checkpoint, num_layers=None):
    pytest.importorskip('mmcv.ops')
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.utils import import_modules_from_strings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import_modules_from_strings(['mmpretrain.models', 'mmseg.models'])
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(VIT_S_CONFIG))
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    if num_layers is not None:
        cfg.model.backbone.arch = dict(
            embed_dims=384,
            num_layers=num_layers,
            num_heads=6,
            feedforward_channels=1536)
        cfg.model.backbone.out_indices = [num_layers - 1]
        cfg.model.backbone.frozen_stages = num_layers
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg.model)


def test_narrow_backbone_into_the_vit_s_segmentation_config(tmp_path):
    """A 96-d backbone file into the 384-d ViT-S MMSegmentation config."""
    path = str(tmp_path / 'vit96.pth')
    _vit_backbone_file(path, 96, 12)
    model = _segmentor(path)
    with pytest.raises(CheckpointMismatchError) as info:
        model.init_weights()
    message = str(info.value)
    assert 'vit96.pth' in message and 'differ in shape' in message
    assert 'cls_token: checkpoint (1, 1, 96) vs model (1, 1, 384)' in message


def test_matching_backbone_loads_with_a_resized_position_embedding(
        tmp_path):
    """Not too strict: the 224-px position embedding of a pretrained file
    differs from the 512-px model's (mmpretrain resizes it)."""
    path = str(tmp_path / 'vit384.pth')
    vit = _vit_backbone_file(path, 384, 2)
    model = _segmentor(path, num_layers=2)
    model.init_weights()
    assert torch.equal(model.backbone.layers[1].ln1.weight,
                       vit.layers[1].ln1.weight)
    assert model.backbone.pos_embed.shape[1] == 1 + 32 * 32


def _train(tmp_path, *args, options=()):
    """tools/train.py on the tiny demo config; returns the process."""
    import subprocess
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / 'tools' / 'train.py'),
            str(DEMO_CONFIG), '--work-dir',
            str(tmp_path / 'work'), *args, '--cfg-options', *TINY_OPTIONS,
            *options
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1'))


@pytest.mark.slow
def test_train_resume_refuses_a_payload(payloads, tmp_path):
    """tools/train.py --resume with a payload stops before training."""
    payload = payloads.files['dotted_torch_serialization']
    proc = _train(tmp_path, '--resume', payload.path)
    payloads.assert_untouched('dotted_torch_serialization')
    assert proc.returncode != 0
    assert 'torch.serialization.os.system' in proc.stderr
    assert '--unsafe-load' in proc.stderr
    assert not list((tmp_path / 'work').glob('epoch_*.pth'))


@pytest.mark.slow
def test_train_load_from_another_architecture_stops(resnet_file, tmp_path):
    """load_from a ResNet checkpoint into the ViT CrIBo model: an error, not
    a warning and a run from random weights."""
    proc = _train(tmp_path, options=['load_from=' + resnet_file])
    assert proc.returncode != 0
    assert 'CheckpointMismatchError' in proc.stderr
    assert 'none of the' in proc.stderr
    assert not list((tmp_path / 'work').glob('epoch_*.pth'))


def test_wrapped_models_are_checked_unwrapped(tmp_path):
    """DDP-like wrappers and test-time-augmentation models are unwrapped
    as mmengine unwraps them before the keys are compared."""
    from mmengine.model import BaseModel, BaseTTAModel
    from mmengine.runner import load_checkpoint
    from torch import nn

    class Net(BaseModel):

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, *args, **kwargs):
            return self.fc(*args)

    class TTA(BaseTTAModel):

        def merge_preds(self, data_samples_list):
            return data_samples_list[0]

    inner = Net()
    path = tmp_path / 'w.pth'
    torch.save({'state_dict': {'fc.weight': torch.ones(2, 2),
                               'fc.bias': torch.zeros(2)}}, path)
    load_checkpoint(TTA(module=inner), str(path), map_location='cpu')
    assert torch.equal(inner.fc.weight, torch.ones(2, 2))
    torch.save({'state_dict': {'conv.weight': torch.ones(2, 2)}}, path)
    with pytest.raises(CheckpointMismatchError, match='none of the 1'):
        load_checkpoint(TTA(module=Net()), str(path), map_location='cpu')
