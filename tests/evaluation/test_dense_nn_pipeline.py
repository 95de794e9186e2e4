# Copyright (c) cribo-mm contributors. All rights reserved.
"""Dataset-to-mIoU tests of the dense NN retrieval evaluation and its
tool."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip('mmcv.ops')  # MMSegmentation needs mmcv's compiled ops

from tests.engine.tiny_config import import_tool  # noqa: E402
from tests.evaluation.test_dense_nn_backbone import TINY_VIT  # noqa: E402

from cribo_mm.evaluation.dense_nn import (  # noqa: E402
    DenseNNSettings, IoUAccumulator, build_backbone, build_memory,
    build_seg_dataset, dataset_meta, evaluate_retrieval, format_fraction,
    parse_fraction, run_dense_nn_retrieval, subset_indices)

TOOL = 'tools/analysis/dense_nn_retrieval.py'


class ColourPatches(nn.Module):
    """Feature of a patch = its mean (normalised) colour, as a feature map.

    With pure-colour classes this is a one-hot-like class code.
    """

    def __init__(self, patch_size=16):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.projection = nn.Conv2d(
            3, 3, patch_size, stride=patch_size, bias=False)
        weight = torch.zeros(3, 3, patch_size, patch_size)
        for c in range(3):
            weight[c, c] = 1.0 / patch_size**2
        self.patch_embed.projection.weight.data.copy_(weight)

    def forward(self, x):
        return (self.patch_embed.projection(x), )


class Constant(ColourPatches):

    def forward(self, x):
        out = self.patch_embed.projection(x)
        return (torch.ones_like(out), )


def _datasets(cfg_file):
    from mmengine.config import Config
    cfg = Config.fromfile(cfg_file)
    return (build_seg_dataset(cfg.train_dataloader.dataset),
            build_seg_dataset(cfg.val_dataloader.dataset))


def test_iou_accumulator_matches_hand_computation():
    acc = IoUAccumulator(3, 255, ['a', 'b', 'c'])
    label = torch.tensor([[0, 0, 1, 255], [1, 1, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 2], [1, 1, 2, 0]])
    acc.update(pred, label)
    res = acc.compute()
    # a: I=1 U=3; b: I=3 U=4; c: I=1 U=2 (the 255 pixel is ignored)
    assert res['IoU']['a'] == pytest.approx(100 / 3)
    assert res['IoU']['b'] == pytest.approx(75.0)
    assert res['IoU']['c'] == pytest.approx(50.0)
    assert res['mIoU'] == pytest.approx((100 / 3 + 75 + 50) / 3)
    assert res['aAcc'] == pytest.approx(500 / 7)
    acc.reset()
    acc.update(torch.zeros(2, 2, dtype=torch.long),
               torch.zeros(2, 2, dtype=torch.long))
    res = acc.compute()
    assert res['mIoU'] == 100.0 and res['IoU']['b'] is None


def test_dataset_loading_and_subsets(stripes_data):
    train, val = _datasets(stripes_data['config'])
    meta = dataset_meta(val)
    assert meta['classes'] == list(stripes_data['classes'])
    assert meta['ignore_index'] == 255 and meta['num_images'] == 3
    item = val[0]
    assert item['img'].shape == (48, 80, 3) and 'data_samples' not in item
    assert item['gt_seg_map'][0, 0] == 255
    assert subset_indices(6, 1.0, 3) == list(range(6))
    sub = subset_indices(128, parse_fraction('1/8'), 0)
    assert len(sub) == 16 and sub == subset_indices(128, 1 / 8, 0)
    assert sub != subset_indices(128, 1 / 8, 1)
    assert format_fraction(parse_fraction('1/128')) == '1/128'
    assert format_fraction(1.0) == '1'
    assert len(subset_indices(10, 1 / 128, 0)) == 1
    with pytest.raises(ValueError):
        parse_fraction('3/2')


def test_colour_codes_give_perfect_miou(stripes_data):
    train, val = _datasets(stripes_data['config'])
    settings = DenseNNSettings(
        img_size=64, aug_epochs=1, augment=False, batch_size=4)
    backbone = ColourPatches().eval()
    memory = build_memory(backbone, train, range(6), 3, 255, settings,
                          progress=False)
    assert len(memory) == 6 * 16 and memory.labels.shape == (96, 3)
    torch.testing.assert_close(memory.feats.norm(dim=1), torch.ones(96))
    res = evaluate_retrieval(backbone, val, range(3), memory, 3, 255,
                             settings, progress=False)
    assert res['mIoU'] == pytest.approx(100.0)
    assert res['aAcc'] == pytest.approx(100.0)
    # capped memory: the same number of patches per image, still perfect
    capped = build_memory(backbone, train, range(6), 3, 255,
                          DenseNNSettings(img_size=64, aug_epochs=2,
                                          memory_size=48), progress=False)
    assert len(capped) == 48 and capped.per_image == 4
    res = evaluate_retrieval(backbone, val, range(3), capped, 3, 255,
                             settings, progress=False)
    assert res['mIoU'] == pytest.approx(100.0)


def test_constant_features_predict_the_majority_class(stripes_data):
    train, val = _datasets(stripes_data['config'])
    settings = DenseNNSettings(img_size=64, aug_epochs=1, augment=False,
                               k=10000)
    backbone = Constant().eval()
    memory = build_memory(backbone, train, range(6), 3, 255, settings,
                          progress=False)
    majority = int(memory.labels.sum(0).argmax())
    seen = []
    evaluate_retrieval(backbone, val, range(3), memory, 3, 255, settings,
                       progress=False, keep_image_for=range(3),
                       on_prediction=seen.append)
    assert len(seen) == 3
    for item in seen:
        assert (item['pred'] == majority).all()
        assert item['image'].shape == (48, 80, 3)


def test_run_with_several_fractions_and_seeds(stripes_data):
    train, val = _datasets(stripes_data['config'])
    settings = DenseNNSettings(img_size=64, aug_epochs=2, memory_size=40)
    result = run_dense_nn_retrieval(
        ColourPatches(), train, val, settings, fractions=(0.5, 1.0),
        seeds=(0, 1), progress=False, log=lambda msg: None)
    assert [(r['fraction'], r['seed']) for r in result['runs']] == [
        (0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1)]
    assert result['runs'][0]['fraction_label'] == '1/2'
    assert result['runs'][0]['num_train_images'] == 3
    assert result['runs'][0]['memory_per_image'] == 40 // 6
    for run in result['runs']:
        assert run['metrics']['mIoU'] == pytest.approx(100.0)


def test_validation_feature_cache_changes_nothing(stripes_data):
    train, val = _datasets(stripes_data['config'])
    torch.manual_seed(0)
    vit = build_backbone(
        dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=32,
                num_layers=2,
                num_heads=2,
                feedforward_channels=64),
            img_size=64,
            patch_size=16))
    results = []
    for cache_bytes in (1 << 30, 0):
        settings = DenseNNSettings(
            img_size=64, aug_epochs=1, val_cache_bytes=cache_bytes)
        result = run_dense_nn_retrieval(
            vit, train, val, settings, seeds=(0, 1), progress=False,
            log=lambda msg: None)
        results.append([r['metrics']['IoU'] for r in result['runs']])
    assert results[0] == results[1]


def load_tool():
    """Import ``tools/analysis/dense_nn_retrieval.py`` as a module."""
    return import_tool(TOOL, 'dense_nn_tool')


def write_tiny_vit_config(tmp_path):
    """Write a model config of a tiny 64x64 ViT (2 layers, width 32).

    Args:
        tmp_path (pathlib.Path): The folder to write ``tiny_vit.py`` in.

    Returns:
        tuple[dict, pathlib.Path]: The backbone config and the file's path.
    """
    vit = dict(TINY_VIT)
    model_cfg = tmp_path / 'tiny_vit.py'
    model_cfg.write_text(f'model = dict(backbone={vit!r})\n')
    return vit, model_cfg


def test_tool_end_to_end(stripes_data, tmp_path, capsys):
    vit, model_cfg = write_tiny_vit_config(tmp_path)
    torch.manual_seed(0)
    state = build_backbone(dict(vit)).state_dict()
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(
        dict(
            meta=dict(seed=np.int64(0)),
            state_dict={
                **{f'teacher.module.0.{k}': v for k, v in state.items()},
                **{f'backbone.{k}': v * 0 for k, v in state.items()}
            }), ckpt)
    out = tmp_path / 'result.json'
    show = tmp_path / 'show'
    tool = load_tool()
    result = tool.main([
        str(model_cfg),
        str(ckpt), '--dataset', stripes_data['config'], '--img-size', '64',
        '--fraction', '1/2', '1', '--seed', '0', '1', '--memory-size', '40',
        '--batch-size', '4', '--device', 'cpu', '--out',
        str(out), '--show-dir',
        str(show), '--show-num', '2', '--no-progress'
    ])
    printed = capsys.readouterr().out
    assert 'mIoU' in printed and 'IoU @ 1/2' in printed and 'green' in printed
    with open(out) as f:
        saved = json.load(f)
    assert saved['checkpoint_info']['prefix'] == 'teacher.module.0.'
    assert saved['settings']['k'] == 30
    assert saved['settings']['temperature'] == 0.02
    assert saved['settings']['memory_size'] == 40
    assert saved['args']['fraction'] == ['1/2', '1']
    assert len(saved['runs']) == 4
    for run in saved['runs']:
        assert set(run['metrics']['IoU']) == set(stripes_data['classes'])
        assert 0 <= run['metrics']['mIoU'] <= 100
    assert set(saved['summary']) == {'1/2', '1'}
    assert not math.isnan(saved['summary']['1']['mIoU'])
    assert result['runs'][0]['metrics']['mIoU'] == saved['runs'][0][
        'metrics']['mIoU']
    pictures = sorted(p.name for p in show.rglob('*.png'))
    assert len(pictures) == 4 * 2
    assert (show / 'frac1-2_seed1').is_dir()
    from PIL import Image
    first = next(show.rglob('*.png'))
    # three labelled columns: a 22-pixel title strip above the 48-pixel row
    assert Image.open(first).size == (3 * 80 + 2 * 4, 22 + 48)
