# Copyright (c) cribo-mm contributors. All rights reserved.
"""ResNet-50 (ORL) MMSegmentation configs and tools/model_converters/orl2mmseg.

Every ``r50_*`` config builds; an ORL checkpoint converted by the CLI loads
into the backbone with no missing or unexpected key; and every config
trains two iterations and evaluates once (Runner, CPU) on the tiny VOC /
ADE20K / CamVid trees, with the backbone shrunk to a ResNet-18 of width 8.
The linear backbone comes out bit-identical and stays in eval mode.
"""
import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch

from tests.engine.tiny_config import import_tool
from tests.tools.test_mmseg_configs import (CONFIG_DIR, ROOT, _config,
                                            _dataset_kind, _is_linear,
                                            _mmseg_scope, seg_data,
                                            short_run_overrides,
                                            shrink_loaders)

assert _mmseg_scope and seg_data  # fixtures used by name below

CONFIGS = sorted(p.name for p in CONFIG_DIR.glob('r50_*.py'))
CONVERTER = ROOT / 'tools' / 'model_converters' / 'orl2mmseg.py'
TINY = dict(depth=18, stem_channels=8, base_channels=8)
WIDTHS = [8, 16, 32, 64]  # ResNet-18 stages at base 8
CROP = (64, 64)


def _converter():
    return import_tool(CONVERTER, 'orl2mmseg')


def _tiny_resnet(seed):
    from mmpretrain.models import ResNet
    torch.manual_seed(seed)
    net = ResNet(**TINY, zero_init_residual=False)
    for p in net.parameters():
        p.data.normal_(std=0.1)
    for name, buf in net.named_buffers():
        if name.endswith('running_var'):
            buf.uniform_(0.5, 2.)
        elif name.endswith('running_mean'):
            buf.normal_()
    return net.state_dict()


@pytest.fixture(scope='module')
def orl_backbone_file(tmp_path_factory):
    """An ORL Runner-layout checkpoint with a tiny ResNet, converted.

    Returns:
        tuple[str, OrderedDict]: the file and the online weights it holds.
    """
    folder = tmp_path_factory.mktemp('orl_ckpt')
    online, target = _tiny_resnet(0), _tiny_resnet(1)
    state = OrderedDict()
    state.update((f'backbone.{k}', v) for k, v in online.items())
    state.update((f'target_net.module.0.{k}', v) for k, v in target.items())
    state['neck.mlp.0.weight'] = torch.zeros(4, 64)
    state['target_net.steps'] = torch.tensor(7)
    src = folder / 'epoch_3.pth'
    torch.save(dict(meta=dict(epoch=3, iter=30), state_dict=state), src)
    dst = folder / 'orl_backbone.pth'
    assert _converter().main([str(src), str(dst)]) == 0
    tgt = folder / 'orl_target_backbone.pth'
    assert _converter().main([str(src), str(tgt), '--network', 'target'
                              ]) == 0
    return str(dst), online, str(tgt), target


def shrink(cfg, data_root, checkpoint, work_dir):
    """ResNet-18 of width 8, 64x64 crops, 2 iterations, tmp data."""
    model = cfg.model
    model.backbone.update(TINY)
    overrides = short_run_overrides(work_dir)
    overrides['model.backbone.init_cfg.checkpoint'] = checkpoint
    if _is_linear(cfg.filename):
        overrides.update({
            'model.decode_head.in_channels': [WIDTHS[-1]],
            'model.decode_head.channels': WIDTHS[-1],
            'model.test_cfg.crop_size': CROP,
            'model.test_cfg.stride': (48, 48),
        })
    else:
        overrides.update({
            'model.decode_head.in_channels': WIDTHS,
            'model.decode_head.channels': 16,
            'model.auxiliary_head.in_channels': WIDTHS[2],
            'model.auxiliary_head.channels': 16,
        })
    cfg.merge_from_dict(overrides)
    shrink_loaders(cfg, data_root)
    return cfg


def test_expected_configs_exist():
    for name in ('r50_linear_8xb1-80k_voc12aug-512x512.py',
                 'r50_linear_8xb1-160k_ade20k-512x512.py',
                 'r50_upernet_8xb2-40k_voc12aug-512x512.py',
                 'r50_upernet_8xb2-160k_ade20k-512x512.py',
                 'r50_linear_1xb8-10k_camvid-352x352.py',
                 'r50_upernet_1xb8-10k_camvid-352x352.py'):
        assert name in CONFIGS


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds(name):
    from mmseg.registry import MODELS
    cfg = _config(name)
    assert cfg.default_scope == 'mmseg'
    assert cfg.model.pretrained is None
    backbone = cfg.model.backbone
    assert backbone.type == 'mmpretrain.ResNet' and backbone.depth == 50
    assert backbone.init_cfg == dict(
        type='Pretrained',
        checkpoint='checkpoints/orl_r50_backbone.pth',
        prefix='backbone.')
    model = MODELS.build(cfg.model)
    assert not model.backbone.deep_stem  # ORL's plain stem
    trainable = [
        n for n, p in model.backbone.named_parameters() if p.requires_grad
    ]
    if _is_linear(name):
        assert trainable == []
        assert model.decode_head.num_convs == 0
        assert model.decode_head.in_channels == 2048
        assert not model.with_auxiliary_head
        # output stride 8 (dilated stages 3 and 4)
        model.backbone.eval()
        with torch.no_grad():
            out = model.backbone(torch.zeros(1, 3, 64, 64))[-1]
        assert out.shape[1:] == (2048, 8, 8)
    else:
        assert len(trainable) == len(list(model.backbone.parameters()))
        assert tuple(backbone.out_indices) == (0, 1, 2, 3)
        assert model.decode_head.in_channels == [256, 512, 1024, 2048]
        assert cfg.optim_wrapper.optimizer.type == 'SGD'


def test_converter_keeps_the_online_network(orl_backbone_file, tmp_path):
    from cribo_mm.utils.checkpoint_io import (CheckpointError,
                                              load_checkpoint_file)
    path, online, tgt_path, target = orl_backbone_file
    out = load_checkpoint_file(path)
    assert set(out['state_dict']) == {f'backbone.{k}' for k in online}
    for k, v in online.items():
        assert torch.equal(out['state_dict'][f'backbone.{k}'], v), k
    assert out['meta']['arch'] == 'resnet18'
    assert out['meta']['network'] == 'online' and out['meta']['epoch'] == 3
    assert out['meta']['out_channels'] == 64
    tgt = load_checkpoint_file(tgt_path)['state_dict']
    assert torch.equal(tgt['backbone.conv1.weight'], target['conv1.weight'])
    # a converted file converts to itself; a ViT checkpoint is refused
    again = tmp_path / 'again.pth'
    assert _converter().main([path, str(again)]) == 0
    assert load_checkpoint_file(str(again))['state_dict'].keys() == out[
        'state_dict'].keys()
    bad = tmp_path / 'vit.pth'
    torch.save(dict(state_dict={'backbone.cls_token': torch.zeros(1)}), bad)
    with pytest.raises(CheckpointError, match="no 'conv1.weight'"):
        _converter().main([str(bad), str(tmp_path / 'x.pth')])


@pytest.mark.parametrize('depth,blocks', [(18, [2, 2, 2, 2]),
                                          (50, [3, 4, 6, 3])])
def test_infer_resnet_arch(depth, blocks):
    from mmpretrain.models import ResNet

    from cribo_mm.utils.resnet_weights import infer_resnet_arch
    arch = infer_resnet_arch(ResNet(depth=depth).state_dict())
    assert arch['depth'] == depth and arch['blocks'] == blocks
    assert arch['out_channels'] == (512 if depth == 18 else 2048)


@pytest.mark.parametrize('name', [
    'r50_linear_8xb1-80k_voc12aug-512x512.py',
    'r50_upernet_8xb2-160k_ade20k-512x512.py',
])
def test_converted_weights_load_without_missing_keys(name, orl_backbone_file):
    from mmseg.registry import MODELS

    from cribo_mm.models.utils.checkpoint_formats import strip_prefix
    from cribo_mm.utils.checkpoint_io import load_checkpoint_file
    path, online, _, _ = orl_backbone_file
    cfg = shrink(_config(name), '.', path, '.')
    model = MODELS.build(cfg.model)
    weights = strip_prefix(
        load_checkpoint_file(path)['state_dict'], 'backbone.')
    missing, unexpected = model.backbone.load_state_dict(
        copy.deepcopy(weights), strict=False)
    assert missing == [] and unexpected == []
    model = MODELS.build(cfg.model)
    model.init_weights()
    for key, value in online.items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_train_two_iters_and_evaluate(name, seg_data, orl_backbone_file,
                                      tmp_path):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    path, online, _, _ = orl_backbone_file
    cfg = shrink(
        _config(name), seg_data[_dataset_kind(name)], path,
        str(tmp_path / 'work'))
    runner = Runner.from_cfg(cfg)

    class Probe(Hook):

        def before_train(self, runner):
            self.before = copy.deepcopy(runner.model.backbone.state_dict())
            self.modes = []

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.modes.append(runner.model.backbone.training)
            self.losses = {k: float(v) for k, v in outputs.items()}

        def after_val_epoch(self, runner, metrics=None):
            self.metrics = metrics

    probe = Probe()
    runner.register_hook(probe, priority='LOWEST')
    runner.train()
    assert np.isfinite(probe.metrics['mIoU'])
    assert all(np.isfinite(v) for v in probe.losses.values())
    for key, value in online.items():
        assert torch.equal(probe.before[key], value), key
    after = runner.model.backbone.state_dict()
    changed = [k for k in after if not torch.equal(after[k], probe.before[k])]
    if _is_linear(name):
        assert changed == [], 'the frozen backbone changed in training'
        assert not any(m.training for m in runner.model.backbone.modules())
    else:
        assert any('running_mean' in k for k in changed)
        assert any(k.endswith('conv1.weight') for k in changed)
