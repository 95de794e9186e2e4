# Copyright (c) cribo-mm contributors. All rights reserved.
"""MMSegmentation benchmark configs of ``configs/benchmarks/mmsegmentation``.

Every config is read and its model built; converted CrIBo weights load into
every backbone with no missing or unexpected key; and every config trains for
two iterations and evaluates once (mmengine Runner, CPU) on tiny generated
data sets laid out like VOC 2012 + aug, ADE20K and CamVid, with the model
shrunk through config overrides. In the linear setting the backbone must come
out of training bit-identical and stay in eval mode.
"""
import copy
import os.path as osp
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmcv.ops')  # mmseg.models needs the compiled ops
pytest.importorskip('mmseg')

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.utils import import_modules_from_strings  # noqa: E402

from tests.engine.tiny_config import import_tool  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs' / 'benchmarks' / 'mmsegmentation'
# the ViT-S/B configs; the CamVid CPU-ViT ones (vit-t16-camvid_*, 6 blocks)
# are tested in test_mmseg_config_writer.py
CONFIGS = sorted(
    p.name for p in CONFIG_DIR.glob('vit-*.py')
    if not p.name.startswith('vit-t16-camvid_'))
CONVERTER = ROOT / 'tools' / 'model_converters' / 'cribo2mmseg.py'

# The shrunk backbone keeps the 12 blocks (so every out_indices and
# frozen_stages=12 stay valid) but is 32 wide.
TINY_ARCH = dict(
    embed_dims=32, num_layers=12, num_heads=2, feedforward_channels=64)
CROP = (64, 64)
IMAGE_HW = (64, 80)

_CONFIG_CACHE = {}


def _config(name: str) -> Config:
    if name not in _CONFIG_CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            _CONFIG_CACHE[name] = Config.fromfile(str(CONFIG_DIR / name))
    return copy.deepcopy(_CONFIG_CACHE[name])


def _is_linear(name: str) -> bool:
    return '_linear' in name


def _dataset_kind(name: str) -> str:
    for kind in ('voc12aug', 'ade20k', 'camvid'):
        if kind in name:
            return kind
    raise AssertionError(f'no data set in the config name {name}')


@pytest.fixture(scope='module', autouse=True)
def _mmseg_scope():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import_modules_from_strings([
            'mmpretrain.models', 'mmseg.models', 'mmseg.datasets',
            'mmseg.evaluation', 'mmseg.engine', 'mmseg.visualization',
            'cribo_mm'
        ])
    init_default_scope('mmseg')
    MMLogger.get_instance('mmengine', log_level='WARNING')


def _load_converter():
    return import_tool(CONVERTER, 'cribo2mmseg')


# ----------------------------------------------------------------------
# tiny generated data sets
# ----------------------------------------------------------------------
def _write_pair(img_path: Path,
                seg_path: Path,
                rng,
                num_classes: int,
                offset: int,
                ignore: int = 255):
    import mmcv
    h, w = IMAGE_HW
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    seg = rng.integers(0, num_classes, (h, w)).astype(np.uint8) + offset
    seg[:4, :4] = ignore
    img_path.parent.mkdir(parents=True, exist_ok=True)
    seg_path.parent.mkdir(parents=True, exist_ok=True)
    mmcv.imwrite(img, str(img_path))
    mmcv.imwrite(seg, str(seg_path))


def write_camvid(root: Path, counts: dict, rng) -> None:
    """Write a tiny CamVid tree (11 classes) in the converted layout.

    Args:
        root (Path): The data root; ``{split}/images/{split}_{i}.jpg`` and
            ``{split}/labels/{split}_{i}.png`` are written under it.
        counts (dict): Images per split, e.g. ``dict(train=3, val=1)``.
        rng (numpy.random.Generator): Source of the pixels and labels.
    """
    for split, count in counts.items():
        for i in range(count):
            _write_pair(root / split / 'images' / f'{split}_{i}.jpg',
                        root / split / 'labels' / f'{split}_{i}.png', rng,
                        11, 0)


@pytest.fixture(scope='module')
def seg_data(tmp_path_factory):
    """Tiny VOC 2012 + aug, ADE20K and CamVid trees (4 images each)."""
    rng = np.random.default_rng(0)
    base = tmp_path_factory.mktemp('seg_data')
    roots = {}

    voc = base / 'VOCdevkit' / 'VOC2012'
    names = [f'2007_00000{i}' for i in range(4)]
    for name in names:
        _write_pair(voc / 'JPEGImages' / f'{name}.jpg',
                    voc / 'SegmentationClass' / f'{name}.png', rng, 21, 0)
        _write_pair(voc / 'JPEGImages' / f'{name}.jpg',
                    voc / 'SegmentationClassAug' / f'{name}.png', rng, 21, 0)
    sets = voc / 'ImageSets' / 'Segmentation'
    sets.mkdir(parents=True)
    (sets / 'train.txt').write_text('\n'.join(names[:2]) + '\n')
    (sets / 'aug.txt').write_text('\n'.join(names[2:]) + '\n')
    (sets / 'val.txt').write_text('\n'.join(names[:1]) + '\n')
    roots['voc12aug'] = str(voc)

    ade = base / 'ade' / 'ADEChallengeData2016'
    for split, count in (('training', 3), ('validation', 1)):
        for i in range(count):
            name = f'ADE_{split}_{i:08d}'
            # 0 = "other" is ignored (reduce_zero_label), classes 1..150
            _write_pair(
                ade / 'images' / split / f'{name}.jpg',
                ade / 'annotations' / split / f'{name}.png',
                rng,
                150,
                1,
                ignore=0)
    roots['ade20k'] = str(ade)

    camvid = base / 'camvid'
    write_camvid(camvid, dict(train=3, val=1), rng)
    roots['camvid'] = str(camvid)
    return roots


# ----------------------------------------------------------------------
# a converted backbone file for the tiny architecture
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_backbone_file(tmp_path_factory):
    """A cribo_mm-layout checkpoint of a tiny CrIBo, converted by the CLI.

    Returns:
        tuple[str, OrderedDict]: the backbone file and the teacher weights
        it must hold (unprefixed mmpretrain keys).
    """
    from mmpretrain.models import VisionTransformer
    folder = tmp_path_factory.mktemp('tiny_ckpt')
    nets = {}
    for seed, name in ((0, 'student'), (1, 'teacher')):
        torch.manual_seed(seed)
        vit = VisionTransformer(
            arch=TINY_ARCH,
            img_size=32,
            patch_size=16,
            out_type='raw',
            final_norm=True)
        for p in vit.parameters():  # no LayerNorm left at 1/0
            p.data.normal_(std=0.1)
        nets[name] = vit.state_dict()
    state = OrderedDict()
    state.update((f'backbone.{k}', v) for k, v in nets['student'].items())
    state.update(
        (f'teacher.module.0.{k}', v) for k, v in nets['teacher'].items())
    state['teacher.steps'] = torch.tensor(10)
    src = folder / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1, iter=10), state_dict=state), src)
    dst = folder / 'backbone.pth'
    assert _load_converter().main([str(src), str(dst)]) == 0
    return str(dst), nets['teacher']


# ----------------------------------------------------------------------
# shrinking a config (what --cfg-options would do)
# ----------------------------------------------------------------------
def _shrink_pipeline(pipeline):
    for t in pipeline:
        if t['type'] == 'RandomResize':
            t['scale'] = (128, 64)
        elif t['type'] == 'RandomCrop':
            t['crop_size'] = CROP
        elif t['type'] == 'Resize':
            t['scale'] = (128, 64)
        elif t['type'] == 'Pad':
            t['size'] = CROP


def _datasets(loader_cfg):
    dataset = loader_cfg['dataset']
    if dataset['type'] == 'ConcatDataset':
        return list(dataset['datasets'])
    return [dataset]


def short_run_overrides(work_dir: str) -> dict:
    """Config overrides for a quiet 2-iteration run with 1 validation.

    Args:
        work_dir (str): The run's work directory.

    Returns:
        dict: ``cfg.merge_from_dict`` keys: 64x64 crops, 2 iterations,
        validation at the end, no checkpoint, fixed seed.
    """
    return {
        'model.data_preprocessor.size': CROP,
        'train_cfg.max_iters': 2,
        'train_cfg.val_interval': 2,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1000,
        'default_hooks.checkpoint.save_last': False,
        'log_level': 'WARNING',
        'work_dir': work_dir,
        'randomness': dict(seed=0),
    }


def shrink(cfg: Config, data_root: str, checkpoint: str,
           work_dir: str) -> Config:
    """Tiny model, 64x64 crops, 2 iterations, 1 validation, tmp data."""
    dim = TINY_ARCH['embed_dims']
    model = cfg.model
    num_outs = len(model.backbone.out_indices)
    model.backbone.arch = dict(TINY_ARCH)  # replaces the arch name
    overrides = short_run_overrides(work_dir)
    overrides.update({
        'model.backbone.img_size': CROP[0],
        'model.backbone.init_cfg.checkpoint': checkpoint,
    })
    if model.decode_head.type == 'FCNHead':  # linear
        overrides.update({
            'model.decode_head.in_channels': [dim] * num_outs,
            'model.decode_head.channels': dim * num_outs,
            'model.test_cfg.crop_size': CROP,
            'model.test_cfg.stride': (48, 48),
        })
    else:  # UperNet
        overrides.update({
            'model.neck.in_channels': [dim] * 4,
            'model.neck.out_channels': dim,
            'model.decode_head.in_channels': [dim] * 4,
            'model.decode_head.channels': 16,
            'model.auxiliary_head.in_channels': dim,
            'model.auxiliary_head.channels': 16,
        })
    cfg.merge_from_dict(overrides)
    shrink_loaders(cfg, data_root)
    return cfg


def shrink_loaders(cfg: Config, data_root: str) -> None:
    """Batch 2 / 1, no workers, ``data_root``, 64x64 pipelines."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[key]
        loader.batch_size = 2 if key == 'train_dataloader' else 1
        loader.num_workers = 0
        loader.persistent_workers = False
        for dataset in _datasets(loader):
            dataset.data_root = data_root
            _shrink_pipeline(dataset.pipeline)


class _Probe(Hook):
    """Records what the tests check during a Runner run."""

    def __init__(self):
        self.metrics = None
        self.before = None
        self.backbone_modes = []

    def before_train(self, runner):
        backbone = runner.model.backbone
        self.before = {
            k: v.detach().clone()
            for k, v in backbone.state_dict().items()
        }

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        backbone = runner.model.backbone
        blocks = [backbone.patch_embed, *backbone.layers]
        self.backbone_modes.append(
            any(m.training for b in blocks for m in b.modules()))
        self.losses = {k: float(v.detach()) for k, v in outputs.items()}

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = metrics


# ----------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------
def test_all_expected_configs_exist():
    for arch in ('s', 'b'):
        for name in (f'vit-{arch}16_linear_8xb1-80k_voc12aug-512x512.py',
                     f'vit-{arch}16_linear_8xb1-160k_ade20k-512x512.py',
                     f'vit-{arch}16_upernet_8xb2-160k_ade20k-512x512.py',
                     f'vit-{arch}16_upernet_8xb2-40k_voc12aug-512x512.py'):
            assert name in CONFIGS
    assert any('camvid' in n and _is_linear(n) for n in CONFIGS)
    assert any('camvid' in n and 'upernet' in n for n in CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds(name):
    from mmseg.registry import MODELS
    cfg = _config(name)
    assert cfg.default_scope == 'mmseg'
    assert {'mmpretrain.models', 'cribo_mm'} <= set(cfg.custom_imports.imports)
    assert cfg.model.pretrained is None
    backbone = cfg.model.backbone
    assert backbone.type.startswith('mmpretrain.')
    assert backbone.init_cfg == dict(
        type='Pretrained',
        checkpoint=backbone.init_cfg.checkpoint,
        prefix='backbone.')
    # mmseg ViT options must not leak into the mmpretrain backbone
    assert not {
        'embed_dims', 'num_layers', 'mlp_ratio', 'norm_eval', 'with_cls_token'
    } & set(backbone)
    model = MODELS.build(cfg.model)
    dim = 768 if name.startswith('vit-b16') else 384
    assert model.backbone.embed_dims == dim
    trainable = {
        n
        for n, p in model.backbone.named_parameters() if p.requires_grad
    }
    if _is_linear(name):
        assert not trainable, 'the linear probe must freeze the backbone'
        assert model.decode_head.num_convs == 0
        assert not model.with_auxiliary_head
        assert model.decode_head.in_channels == \
            dim * len(backbone.out_indices)
        assert model.decode_head.dropout is None
        assert not any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for m in model.decode_head.modules())
    else:
        assert len(trainable) == len(list(model.backbone.parameters()))
        assert tuple(backbone.out_indices) == (2, 5, 8, 11)


@pytest.mark.parametrize('name', [
    'vit-s16_linear_8xb1-80k_voc12aug-512x512.py',
    'vit-b16_upernet_8xb2-160k_ade20k-512x512.py',
    'vit-s16_upernet_8xb2-40k_voc12aug-512x512.py',
])
def test_converted_weights_load_without_missing_keys(name, tiny_backbone_file):
    from mmseg.registry import MODELS

    from cribo_mm.models.utils.checkpoint_formats import strip_prefix
    from cribo_mm.utils.checkpoint_io import load_checkpoint_file
    path, teacher = tiny_backbone_file
    cfg = shrink(_config(name), '.', path, '.')
    model = MODELS.build(cfg.model)
    weights = strip_prefix(
        load_checkpoint_file(path)['state_dict'], 'backbone.', strict=True)
    missing, unexpected = model.backbone.load_state_dict(
        copy.deepcopy(weights), strict=False)
    assert missing == [] and unexpected == []
    # through init_cfg=Pretrained(prefix='backbone.'), as in training
    model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert set(loaded) == set(teacher)
    for key, value in teacher.items():
        if key == 'pos_embed':  # resized from 2x2 to 4x4 patches
            assert loaded[key].shape[1] == 1 + (CROP[0] // 16)**2
            assert torch.equal(loaded[key][:, 0], value[:, 0])
        else:
            assert torch.equal(loaded[key], value), key


def _param_groups(cfg: Config, model=None) -> dict:
    """Build the optimizer of ``cfg`` as the Runner does.

    Returns:
        dict: ``name -> (lr, weight_decay)`` for every model parameter.
    """
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    if model is None:
        model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            groups[names[id(p)]] = (group['lr'], group['weight_decay'])
    assert len(groups) == len(names)
    return groups


def _check_layer_decay(groups: dict, rate: float, num_layers: int = 12):
    base_lr, base_wd = 1e-4, 0.05

    def check(name, scale, decay):
        lr, wd = groups[name]
        assert lr == pytest.approx(base_lr * scale), name
        assert wd == pytest.approx(base_wd * decay), name

    embed = rate**(num_layers + 1)
    check('backbone.cls_token', embed, 0)
    check('backbone.pos_embed', embed, 0)
    check('backbone.patch_embed.projection.weight', embed, 1)
    check('backbone.patch_embed.projection.bias', embed, 0)
    for i in (0, 1, num_layers - 2, num_layers - 1):
        scale = rate**(num_layers - i)
        check(f'backbone.layers.{i}.attn.qkv.weight', scale, 1)
        check(f'backbone.layers.{i}.attn.qkv.bias', scale, 0)
        check(f'backbone.layers.{i}.ffn.layers.1.weight', scale, 1)
        check(f'backbone.layers.{i}.ffn.layers.0.0.bias', scale, 0)
        check(f'backbone.layers.{i}.ln2.weight', scale, 0)
    check('backbone.ln1.weight', 1, 0)
    check('decode_head.conv_seg.weight', 1, 1)
    check('decode_head.conv_seg.bias', 1, 0)
    check('neck.lateral_convs.0.conv.weight', 1, 1)


@pytest.mark.parametrize('name', [
    'vit-s16_upernet_8xb2-160k_ade20k-512x512.py',
    'vit-b16_upernet_8xb2-40k_voc12aug-512x512.py',
])
def test_layer_wise_lr_decay(name):
    cfg = shrink(_config(name), '.', '', '.')
    assert cfg.optim_wrapper.constructor == \
        'mmpretrain.CrIBoLayerDecayOptimWrapperConstructor'
    _check_layer_decay(_param_groups(cfg), 0.65)


def test_layer_wise_lr_decay_is_the_mmpretrain_depth():
    """Every backbone parameter: lr * rate ** (num_depths - 1 - depth) with
    mmpretrain's ``VisionTransformer.get_layer_depth()``; weight decay on
    the matrices only."""
    from mmseg.registry import MODELS
    cfg = shrink(
        _config('vit-s16_upernet_8xb2-160k_ade20k-512x512.py'), '.', '', '.')
    model = MODELS.build(cfg.model)
    groups = _param_groups(cfg, model)
    for name, param in model.backbone.named_parameters():
        depth, num_depths = model.backbone.get_layer_depth(name)
        lr, wd = groups[f'backbone.{name}']
        assert lr == pytest.approx(1e-4 * 0.65**(num_depths - 1 - depth))
        no_decay = param.ndim == 1 or name in ('cls_token', 'pos_embed')
        assert wd == (0 if no_decay else pytest.approx(0.05)), name


def test_layer_wise_lr_decay_cfg_options():
    """The rate and the depth are config values, as --cfg-options sets
    them."""
    import argparse

    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(
        ['--cfg-options', 'optim_wrapper.paramwise_cfg.layer_decay_rate=0.5'])
    cfg = shrink(
        _config('vit-s16_upernet_8xb2-160k_ade20k-512x512.py'), '.', '', '.')
    cfg.merge_from_dict(args.cfg_options)
    _check_layer_decay(_param_groups(cfg), 0.5)

    cfg = shrink(
        _config('vit-s16_upernet_8xb2-160k_ade20k-512x512.py'), '.', '', '.')
    cfg.merge_from_dict({'model.backbone.arch.num_layers': 6})
    cfg.model.backbone.out_indices = (1, 2, 4, 5)
    _check_layer_decay(_param_groups(cfg), 0.65, num_layers=6)

    # an explicit depth larger than the backbone's (as for a backbone
    # without `layers`)
    cfg = shrink(
        _config('vit-s16_upernet_8xb2-160k_ade20k-512x512.py'), '.', '', '.')
    cfg.merge_from_dict({'optim_wrapper.paramwise_cfg.num_layers': 14})
    groups = _param_groups(cfg)
    assert groups['backbone.cls_token'][0] == pytest.approx(1e-4 * 0.65**15)
    assert groups['backbone.layers.11.attn.qkv.weight'][0] == \
        pytest.approx(1e-4 * 0.65**3)
    assert groups['backbone.ln1.weight'][0] == pytest.approx(1e-4)

    # a block beyond num_layers is an error
    cfg.merge_from_dict({'optim_wrapper.paramwise_cfg.num_layers': 6})
    with pytest.raises(ValueError, match='num_layers'):
        _param_groups(cfg)


def test_layer_wise_lr_decay_custom_keys_and_frozen_params():
    """custom_keys still apply (multiplied in the backbone); frozen
    parameters are left out, as with the default constructor."""
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    cfg = shrink(
        _config('vit-s16_upernet_8xb2-160k_ade20k-512x512.py'), '.', '', '.')
    cfg.optim_wrapper.paramwise_cfg.custom_keys = {
        'decode_head': dict(lr_mult=10.),
        'backbone.layers.11.attn': dict(lr_mult=2., decay_mult=0.5),
    }
    model = MODELS.build(cfg.model)
    model.backbone.patch_embed.requires_grad_(False)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {
        names[id(p)]: (g['lr'], g['weight_decay'])
        for g in wrapper.optimizer.param_groups for p in g['params']
    }
    assert not any(n.startswith('backbone.patch_embed.') for n in groups)
    assert groups['decode_head.conv_seg.weight'] == pytest.approx(
        (1e-3, 0.05))
    assert groups['backbone.layers.11.attn.qkv.weight'] == pytest.approx(
        (1e-4 * 0.65 * 2, 0.025))
    assert groups['backbone.layers.11.attn.qkv.bias'] == pytest.approx(
        (1e-4 * 0.65 * 2, 0))
    assert groups['backbone.layers.11.ffn.layers.1.weight'] == \
        pytest.approx((1e-4 * 0.65, 0.05))


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_train_two_iters_and_evaluate(name, seg_data, tiny_backbone_file,
                                      tmp_path):
    from mmengine.runner import Runner

    path, teacher = tiny_backbone_file
    cfg = shrink(
        _config(name), seg_data[_dataset_kind(name)], path,
        str(tmp_path / 'work'))
    runner = Runner.from_cfg(cfg)
    probe = _Probe()
    runner.register_hook(probe, priority='LOWEST')
    runner.train()

    assert probe.metrics is not None and 'mIoU' in probe.metrics
    assert np.isfinite(probe.metrics['mIoU'])
    assert all(np.isfinite(v) for v in probe.losses.values())
    assert runner.iter == 2
    # the backbone was initialised from the converted teacher weights
    for key, value in teacher.items():
        if key != 'pos_embed':
            assert torch.equal(probe.before[key], value), key
    after = runner.model.backbone.state_dict()
    changed = [k for k in after if not torch.equal(after[k], probe.before[k])]
    if _is_linear(name):
        assert changed == [], 'the frozen backbone changed in training'
        assert probe.backbone_modes == [False, False], \
            'the frozen backbone must stay in eval mode'
        head = runner.model.decode_head.conv_seg.weight
        assert head.requires_grad
    else:
        assert changed, 'fine-tuning left the backbone unchanged'


def test_linear_head_trains_backbone_frozen(tiny_backbone_file):
    """One optimizer step changes the 1x1 conv only (no Runner)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    path, _ = tiny_backbone_file
    cfg = shrink(
        _config('vit-s16_linear-last4_8xb1-80k_voc12aug-512x512.py'), '.',
        path, '.')
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    backbone_before = copy.deepcopy(model.backbone.state_dict())
    head_before = model.decode_head.conv_seg.weight.detach().clone()
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 21, (1, *CROP)))
        sample.set_metainfo(dict(img_shape=CROP, pad_shape=CROP))
        samples.append(sample)
    data = dict(
        inputs=[torch.randint(0, 256, (3, *CROP), dtype=torch.uint8)] * 2,
        data_samples=samples)
    losses = model(**model.data_preprocessor(data, True), mode='loss')
    loss, _ = model.parse_losses(losses)
    wrapper.update_params(loss)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key
    assert not torch.equal(model.decode_head.conv_seg.weight, head_before)
    assert model.decode_head.in_channels == 4 * TINY_ARCH['embed_dims']
    assert osp.basename(path) == 'backbone.pth'
