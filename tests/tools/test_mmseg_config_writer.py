# Copyright (c) cribo-mm contributors. All rights reserved.
"""MMSegmentation configs written by the converters (``--config-out``).

A demo-sized ViT (96 dims, 4 blocks, 3 heads, 8-px patches) and a ResNet-18
of width 8 are converted with ``cribo2mmseg.py`` / ``orl2mmseg.py
--config-out``; the written configs read with mmengine, build, load the
weights with no missing or unexpected key, and train two iterations and
evaluate on the tiny CamVid tree. The shipped CamVid configs of the CPU ViT
(``vit-t16-camvid_*``) are what the writer produces for that backbone.
"""
import copy
import os
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch

from tests.tools.test_mmseg_configs import (CONFIG_DIR, ROOT, _mmseg_scope,
                                            seg_data, short_run_overrides,
                                            shrink_loaders)
from tests.tools.test_mmseg_configs import _load_converter as _cribo_tool
from tests.tools.test_mmseg_resnet_configs import _converter as _orl_tool
from tests.tools.test_mmseg_resnet_configs import _tiny_resnet

assert _mmseg_scope and seg_data  # fixtures used by name below

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

from cribo_mm.utils.mmseg_config_writer import (  # noqa: E402
    find_base_config, num_heads_from_checkpoint, resolve_num_heads,
    spread_out_indices, vit_model_cfg)

DEMO_ARCH = dict(
    embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=384)
CPU_CONFIGS = ('vit-t16-camvid_linear_1xb8-10k_camvid-352x352.py',
               'vit-t16-camvid_upernet_1xb8-10k_camvid-352x352.py')
CROP = (64, 64)


def _vit_state(arch, patch_size, seed):
    from mmpretrain.models import VisionTransformer
    torch.manual_seed(seed)
    vit = VisionTransformer(
        arch=arch,
        img_size=8 * patch_size,
        patch_size=patch_size,
        out_type='raw',
        final_norm=True)
    for p in vit.parameters():  # no LayerNorm left at 1/0
        p.data.normal_(std=0.1)
    return vit.state_dict()


def _runner_checkpoint(path, arch, patch_size, cfg_text=None):
    """A cribo_mm Runner checkpoint (student + EMA teacher)."""
    student, teacher = _vit_state(arch, patch_size, 0), _vit_state(
        arch, patch_size, 1)
    state = OrderedDict((f'backbone.{k}', v) for k, v in student.items())
    state.update((f'teacher.module.0.{k}', v) for k, v in teacher.items())
    meta = dict(epoch=8, iter=16)
    if cfg_text is not None:
        meta['cfg'] = cfg_text
    torch.save(dict(meta=meta, state_dict=state), path)
    return teacher


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """A demo-recipe checkpoint whose meta holds the demo config's text,
    as mmengine's Runner writes it.

    Returns:
        tuple[str, OrderedDict]: the file and its teacher weights.
    """
    folder = tmp_path_factory.mktemp('demo_ckpt')
    cfg = Config.fromfile(str(ROOT / 'configs' / 'cribo' / 'vit-t16_demo.py'))
    arch = cfg.model.backbone.arch
    assert {k: arch[k] for k in DEMO_ARCH} == DEMO_ARCH
    src = folder / 'epoch_8.pth'
    teacher = _runner_checkpoint(src, DEMO_ARCH, cfg.model.patch_size,
                                 cfg.pretty_text)
    return str(src), teacher


def _convert_vit(src, folder, *options):
    dst = osp.join(str(folder), 'demo_backbone.pth')
    assert _cribo_tool().main([src, dst, '--config-out', *options]) == 0
    return dst


def _written(dst, base_name):
    path = f'{osp.splitext(dst)[0]}_{base_name}'
    assert osp.isfile(path), os.listdir(osp.dirname(dst))
    return path


def _backbone_weights(path):
    from cribo_mm.models.utils.checkpoint_formats import strip_prefix
    from cribo_mm.utils.checkpoint_io import load_checkpoint_file
    return strip_prefix(
        load_checkpoint_file(path)['state_dict'], 'backbone.', strict=True)


def _check_loads(model, dst, weights):
    """No missing / unexpected key; init_cfg loads the exact tensors."""
    missing, unexpected = model.backbone.load_state_dict(
        copy.deepcopy(_backbone_weights(dst)), strict=False)
    assert missing == [] and unexpected == []
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert set(loaded) == set(weights)
    for key, value in weights.items():
        if key == 'pos_embed':  # resized to the crop's grid
            assert torch.equal(loaded[key][:, 0], value[:, 0])
        else:
            assert torch.equal(loaded[key], value), key


# ----------------------------------------------------------------------
# pieces
# ----------------------------------------------------------------------
def test_spread_out_indices():
    assert spread_out_indices(12, 4) == [2, 5, 8, 11]  # ViT-S UperNet
    assert spread_out_indices(6, 4) == [1, 2, 4, 5]
    assert spread_out_indices(4, 4) == [0, 1, 2, 3]
    assert spread_out_indices(24, 4) == [5, 11, 17, 23]
    assert spread_out_indices(7, 1) == [6]
    with pytest.raises(ValueError, match='3 blocks cannot give 4'):
        spread_out_indices(3, 4)


def test_num_heads_sources(demo_checkpoint, tmp_path):
    from cribo_mm.utils.checkpoint_io import load_checkpoint_file
    ckpt = load_checkpoint_file(demo_checkpoint[0])
    assert num_heads_from_checkpoint(ckpt) == 3  # the Runner's cfg text
    assert num_heads_from_checkpoint({'meta': {'arch': {'num_heads': 4}}
                                      }) == 4
    assert num_heads_from_checkpoint({'state_dict': {}}) is None
    assert num_heads_from_checkpoint({'meta': {'cfg': 'model = dict('}
                                      }) is None
    # the text is parsed, never run
    marker = tmp_path / 'ran'
    text = (f'open({str(marker)!r}, "w")\n'
            'model = dict(backbone=dict(arch={"num_heads": 2}))\n')
    assert num_heads_from_checkpoint({'meta': {'cfg': text}}) == 2
    assert not marker.exists()
    # the user's number wins, then the record, then the standard widths
    arch = dict(embed_dims=96, num_heads=None)
    assert resolve_num_heads(arch, ckpt, 4) == 4
    assert resolve_num_heads(arch, ckpt) == 3
    assert resolve_num_heads(arch, {}) is None
    with pytest.raises(ValueError, match='96-d ViT.*--num-heads'):
        resolve_num_heads(arch, {}, required=True)
    assert resolve_num_heads(dict(embed_dims=384, num_heads=6), {}) == 6
    with pytest.raises(ValueError, match='num_heads=5 does not divide'):
        resolve_num_heads(arch, ckpt, 5)


def test_find_base_config():
    path = find_base_config('vit', 'upernet', 'camvid')
    assert osp.basename(path) == 'vit-s16_upernet_1xb8-10k_camvid-352x352.py'
    assert osp.basename(find_base_config('resnet', 'linear', 'ade20k')) == \
        'r50_linear_8xb1-160k_ade20k-512x512.py'
    with pytest.raises(ValueError, match='available'):
        find_base_config('vit', 'linear-last4', 'camvid')


# ----------------------------------------------------------------------
# the converters' --config-out
# ----------------------------------------------------------------------
@pytest.mark.parametrize('head,dataset,base_name', [
    ('linear', 'camvid', 'vit-s16_linear_1xb8-10k_camvid-352x352.py'),
    ('upernet', 'camvid', 'vit-s16_upernet_1xb8-10k_camvid-352x352.py'),
    ('linear-last4', 'voc12aug',
     'vit-s16_linear-last4_8xb1-80k_voc12aug-512x512.py'),
    ('upernet', 'ade20k', 'vit-s16_upernet_8xb2-160k_ade20k-512x512.py'),
])
def test_vit_config_out(head, dataset, base_name, demo_checkpoint, tmp_path):
    from mmseg.registry import MODELS
    src, teacher = demo_checkpoint
    dst = _convert_vit(src, tmp_path, '--head', head, '--dataset', dataset)
    cfg = Config.fromfile(_written(dst, base_name))
    base = Config.fromfile(str(CONFIG_DIR / base_name))
    backbone = cfg.model.backbone
    assert backbone.arch == DEMO_ARCH
    assert backbone.patch_size == 8 and backbone.init_cfg.checkpoint == dst
    assert backbone.img_size == base.model.backbone.img_size
    # everything else is the base's
    assert cfg.train_dataloader == base.train_dataloader
    assert cfg.optim_wrapper == base.optim_wrapper
    assert cfg.model.decode_head.num_classes == \
        base.model.decode_head.num_classes
    model = MODELS.build(cfg.model)
    assert model.backbone.embed_dims == 96
    assert model.backbone.layers[0].attn.num_heads == 3
    if head.startswith('linear'):
        n = 4 if head == 'linear-last4' else 1
        assert list(backbone.out_indices) == list(range(4 - n, 4))
        assert model.decode_head.in_channels == 96 * n
        assert model.decode_head.channels == 96 * n
        assert not any(p.requires_grad for p in model.backbone.parameters())
    else:
        assert list(backbone.out_indices) == [0, 1, 2, 3]
        assert model.decode_head.in_channels == [96] * 4
        assert model.auxiliary_head.in_channels == 96
        with torch.no_grad():
            feats = model.extract_feat(torch.zeros(1, 3, 64, 64))
        # MultiLevelNeck: strides 2, 4, 8, 16 of the 8-px patch grid
        assert [tuple(f.shape[1:]) for f in feats] == [(96, 32, 32),
                                                       (96, 16, 16),
                                                       (96, 8, 8),
                                                       (96, 4, 4)]
    _check_loads(MODELS.build(cfg.model), dst, teacher)
    meta = torch.load(dst, weights_only=True)['meta']
    assert meta['arch']['num_heads'] == 3  # recorded for the next time


def test_vit_config_out_path_and_base(demo_checkpoint, tmp_path):
    src, _ = demo_checkpoint
    out = tmp_path / 'cfgs' / 'mine.py'
    base = CONFIG_DIR / 'vit-s16_linear_8xb1-160k_ade20k-512x512.py'
    dst = osp.join(str(tmp_path), 'b.pth')
    assert _cribo_tool().main([
        src, dst, '--config-out',
        str(out), '--mmseg-base',
        str(base), '--student'
    ]) == 0
    cfg = Config.fromfile(str(out))
    assert cfg.model.decode_head.num_classes == 150
    assert cfg.model.backbone.frozen_stages == 4
    # outside the project the base is referenced by its absolute path
    text = out.read_text()
    assert f"_base_ = [{str(base)!r}]" in text
    with pytest.raises(FileNotFoundError, match='--mmseg-base'):
        _cribo_tool().main([
            src, dst, '--config-out', '--mmseg-base',
            str(tmp_path / 'none.py')
        ])


def test_vit_config_relative_paths(demo_checkpoint, tmp_path, monkeypatch):
    """Configs written inside the project point at their base relatively;
    a relative DST stays as typed."""
    src, _ = demo_checkpoint
    folder = ROOT / 'work_dirs' / 'tests_config_writer'
    monkeypatch.chdir(ROOT)
    dst = osp.relpath(str(folder / 'b.pth'), str(ROOT))
    try:
        assert _cribo_tool().main(
            [src, dst, '--config-out', '--head', 'upernet', '--dataset',
             'camvid']) == 0
        path = _written(dst, 'vit-s16_upernet_1xb8-10k_camvid-352x352.py')
        text = open(path).read()
        assert ("_base_ = ['../../configs/benchmarks/mmsegmentation/"
                "vit-s16_upernet_1xb8-10k_camvid-352x352.py']") in text
        assert Config.fromfile(path).model.backbone.init_cfg.checkpoint == \
            dst
    finally:
        if folder.is_dir():
            for name in os.listdir(folder):
                os.remove(folder / name)
            os.rmdir(folder)


def test_vit_config_out_errors(tmp_path):
    src = str(tmp_path / 'odd.pth')
    arch = dict(
        embed_dims=80, num_layers=3, num_heads=5, feedforward_channels=160)
    _runner_checkpoint(src, arch, 16)  # no config text: heads unknown
    dst = str(tmp_path / 'odd_backbone.pth')
    tool = _cribo_tool()
    with pytest.raises(ValueError, match='80-d ViT.*--num-heads'):
        tool.main([src, dst, '--config-out'])
    assert not osp.exists(dst)  # refused before writing anything
    with pytest.raises(ValueError, match='num_heads=3 does not divide'):
        tool.main([src, dst, '--num-heads', '3'])
    # 3 blocks cannot feed UperNet's 4 levels
    with pytest.raises(ValueError, match='3 blocks cannot give 4'):
        tool.main([
            src, dst, '--num-heads', '5', '--config-out', '--head', 'upernet'
        ])
    with pytest.raises(ValueError, match='available'):
        tool.main([
            src, dst, '--num-heads', '5', '--config-out', '--head',
            'linear-last4', '--dataset', 'ade20k'
        ])
    with pytest.raises(ValueError, match='--head only apply with'):
        tool.main([src, dst, '--num-heads', '5', '--head', 'upernet'])
    with pytest.raises(ValueError, match='replaces --head'):
        tool.main([
            src, dst, '--num-heads', '5', '--config-out', '--head',
            'upernet', '--mmseg-base',
            str(CONFIG_DIR / 'vit-s16_linear_1xb8-10k_camvid-352x352.py')
        ])
    # a ResNet base for ViT weights
    with pytest.raises(ValueError, match='ResNet backbone, the weights'):
        tool.main([
            src, dst, '--num-heads', '5', '--config-out', '--mmseg-base',
            str(CONFIG_DIR / 'r50_linear_1xb8-10k_camvid-352x352.py')
        ])
    # without --config-out no config is written
    assert tool.main([src, dst, '--num-heads', '5']) == 0
    assert sorted(os.listdir(tmp_path)) == ['odd.pth', 'odd_backbone.pth']


@pytest.fixture(scope='module')
def orl_checkpoint(tmp_path_factory):
    """An ORL Runner checkpoint with a ResNet-18 of width 8."""
    folder = tmp_path_factory.mktemp('orl_ckpt')
    online = _tiny_resnet(0)
    state = OrderedDict((f'backbone.{k}', v) for k, v in online.items())
    state.update(
        (f'target_net.module.0.{k}', v) for k, v in _tiny_resnet(1).items())
    src = folder / 'epoch_3.pth'
    torch.save(dict(meta=dict(epoch=3), state_dict=state), src)
    return str(src), online


@pytest.mark.parametrize('head', ['linear', 'upernet'])
def test_resnet_config_out(head, orl_checkpoint, tmp_path):
    from mmseg.registry import MODELS
    src, online = orl_checkpoint
    dst = str(tmp_path / 'orl_backbone.pth')
    assert _orl_tool().main(
        [src, dst, '--config-out', '--head', head, '--dataset', 'camvid']) \
        == 0
    cfg = Config.fromfile(_written(dst,
                                   f'r50_{head}_1xb8-10k_camvid-352x352.py'))
    backbone = cfg.model.backbone
    assert (backbone.depth, backbone.stem_channels,
            backbone.base_channels) == (18, 8, 8)
    model = MODELS.build(cfg.model)
    if head == 'linear':
        assert model.decode_head.in_channels == 64
        assert model.decode_head.channels == 64
    else:
        assert model.decode_head.in_channels == [8, 16, 32, 64]
        assert model.auxiliary_head.in_channels == 32
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.zeros(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == \
        ([64] if head == 'linear' else [8, 16, 32, 64])
    _check_loads(MODELS.build(cfg.model), dst, online)


# ----------------------------------------------------------------------
# the CamVid configs of the CPU ViT
# ----------------------------------------------------------------------
@pytest.mark.parametrize('name', CPU_CONFIGS)
def test_cpu_vit_configs_are_the_written_ones(name):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(str(CONFIG_DIR / name))
    head = 'linear' if '_linear_' in name else 'upernet'
    base = Config.fromfile(find_base_config('vit', head, 'camvid'))
    recipe = Config.fromfile(
        str(ROOT / 'configs' / 'cribo' /
            'cribo_vit-t16-camvid_1xb32-40e_camvid.py'))
    arch = dict(recipe.model.backbone.arch)
    info = dict(
        arch=arch,
        patch_size=recipe.model.backbone.patch_size,
        qkv_bias=True,
        final_norm=True)
    written = Config(
        dict(model=base.model.to_dict()))  # merged like the writer's file
    written.merge_from_dict(
        dict(
            model=vit_model_cfg(base.model, info, arch['num_heads'],
                                cfg.model.backbone.init_cfg.checkpoint)))
    assert cfg.model.to_dict() == written.model.to_dict()
    assert cfg.model.backbone.init_cfg.checkpoint == \
        'work_dirs/camvid/cribo_camvid_teacher_backbone.pth'
    assert cfg.train_dataloader.dataset.data_root == 'data/camvid/'
    model = MODELS.build(cfg.model)
    assert model.backbone.embed_dims == 128
    assert len(model.backbone.layers) == 6
    if head == 'linear':
        assert not any(p.requires_grad for p in model.backbone.parameters())
    else:
        assert tuple(cfg.model.backbone.out_indices) == (1, 2, 4, 5)


# ----------------------------------------------------------------------
# end to end: two iterations and an evaluation on the tiny CamVid tree
# ----------------------------------------------------------------------
class _Probe(Hook):

    def before_train(self, runner):
        self.before = copy.deepcopy(runner.model.backbone.state_dict())

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses = {k: float(v) for k, v in outputs.items()}

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = metrics


def _run(cfg_path, data_root, work_dir):
    from mmengine.runner import Runner
    cfg = Config.fromfile(cfg_path)
    overrides = short_run_overrides(work_dir)
    if 'img_size' in cfg.model.backbone:
        overrides['model.backbone.img_size'] = CROP[0]
    if cfg.model.get('auxiliary_head'):  # UperNet: narrower heads
        overrides.update({
            'model.decode_head.channels': 16,
            'model.auxiliary_head.channels': 16
        })
    if cfg.model.test_cfg.get('mode') == 'slide':
        overrides.update({
            'model.test_cfg.crop_size': CROP,
            'model.test_cfg.stride': (48, 48)
        })
    cfg.merge_from_dict(overrides)
    shrink_loaders(cfg, data_root)
    runner = Runner.from_cfg(cfg)
    probe = _Probe()
    runner.register_hook(probe, priority='LOWEST')
    runner.train()
    assert runner.iter == 2
    assert np.isfinite(probe.metrics['mIoU'])
    assert all(np.isfinite(v) for v in probe.losses.values())
    return runner, probe


@pytest.mark.slow
@pytest.mark.parametrize('family,head', [('vit', 'linear'),
                                         ('vit', 'upernet'),
                                         ('resnet', 'upernet')])
def test_written_config_trains_and_evaluates(family, head, demo_checkpoint,
                                             orl_checkpoint, seg_data,
                                             tmp_path):
    if family == 'vit':
        src, weights = demo_checkpoint
        dst = _convert_vit(src, tmp_path, '--head', head, '--dataset',
                           'camvid')
        base = f'vit-s16_{head}_1xb8-10k_camvid-352x352.py'
    else:
        src, weights = orl_checkpoint
        dst = str(tmp_path / 'orl_backbone.pth')
        assert _orl_tool().main(
            [src, dst, '--config-out', '--head', head, '--dataset',
             'camvid']) == 0
        base = f'r50_{head}_1xb8-10k_camvid-352x352.py'
    runner, probe = _run(
        _written(dst, base), seg_data['camvid'], str(tmp_path / 'work'))
    for key, value in weights.items():  # trained from the converted weights
        if key != 'pos_embed':
            assert torch.equal(probe.before[key], value), key
    after = runner.model.backbone.state_dict()
    changed = [k for k in after if not torch.equal(after[k], probe.before[k])]
    assert (changed == []) == (head == 'linear')


@pytest.mark.slow
@pytest.mark.parametrize('name', CPU_CONFIGS)
def test_cpu_vit_config_trains_and_evaluates(name, seg_data, tmp_path):
    arch = dict(
        embed_dims=128, num_layers=6, num_heads=4, feedforward_channels=512)
    src = str(tmp_path / 'epoch_40.pth')
    teacher = _runner_checkpoint(src, arch, 16)
    dst = str(tmp_path / 'cribo_camvid_teacher_backbone.pth')
    assert _cribo_tool().main([src, dst]) == 0
    cfg = Config.fromfile(str(CONFIG_DIR / name))
    cfg.model.backbone.init_cfg.checkpoint = dst
    path = str(tmp_path / name)
    cfg.dump(path)
    _, probe = _run(path, seg_data['camvid'], str(tmp_path / 'work'))
    for key, value in teacher.items():
        if key != 'pos_embed':
            assert torch.equal(probe.before[key], value), key
