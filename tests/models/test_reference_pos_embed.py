# Copyright (c) cribo-mm contributors. All rights reserved.
"""The reference (scale-factor) position-embedding interpolation.

The authors' ViT resizes its 14x14 position embedding with
``scale_factor = ((h + 0.1) / 14, (w + 0.1) / 14)``, mmpretrain's to an
explicit size; on the fixture's 160x128 input the tokens differ by about
0.035 (fixtures README). ``CrIBoVisionTransformer(pos_embed_interp=
'reference')`` reproduces the authors' tokens.
"""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed

from cribo_mm.models.backbones import (CrIBoVisionTransformer,
                                       default_pos_embed_interp,
                                       resize_pos_embed_by_scale,
                                       with_pos_embed_interp)
from tests.fixtures import FIXTURES, load_fixture

OFFICIAL = FIXTURES / 'official_checkpoint_tiny.pth'
TINY_ARCH = dict(
    embed_dims=192, num_layers=2, num_heads=3, feedforward_channels=768)


def _vit(cls=CrIBoVisionTransformer, **kwargs):
    vit = cls(
        arch=dict(TINY_ARCH),
        img_size=224,
        patch_size=16,
        out_type='raw',
        final_norm=True,
        qkv_bias=True,
        **kwargs)
    vit.eval()
    return vit


def test_scale_factor_resize():
    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 14 * 14, 8)
    assert resize_pos_embed_by_scale(pos, (14, 14), (14, 14)) is pos
    for dst in ((20, 20), (10, 8), (7, 30)):
        out = resize_pos_embed_by_scale(pos, (14, 14), dst)
        assert out.shape == (1, 1 + dst[0] * dst[1], 8)
        torch.testing.assert_close(out[:, :1], pos[:, :1], rtol=0, atol=0)
        grid = pos[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
        expected = F.interpolate(
            grid,
            scale_factor=((dst[0] + 0.1) / 14, (dst[1] + 0.1) / 14),
            mode='bicubic').flatten(2).transpose(1, 2)
        torch.testing.assert_close(out[:, 1:], expected, rtol=0, atol=0)
        # mmpretrain samples other positions: same size, other values
        size = resize_pos_embed(pos, (14, 14), dst, 'bicubic', 1)
        assert size.shape == out.shape
        assert (size - out).abs().max() > 1e-3
    with pytest.raises(ValueError, match='12x12 grid'):
        resize_pos_embed_by_scale(pos, (12, 12), (10, 10))


@pytest.fixture(scope='module')
def student_weights():
    if not OFFICIAL.is_file():
        pytest.skip(f'reference fixture {OFFICIAL} not available')
    from cribo_mm.models.utils.checkpoint_formats import extract_backbone
    from cribo_mm.utils.checkpoint_io import load_checkpoint_file
    return extract_backbone(load_checkpoint_file(str(OFFICIAL)), 'student')


def test_reference_interpolation_matches_the_authors_network(
        student_weights):
    reference = load_fixture('head_and_backbone.pt')
    plain = _vit(VisionTransformer)
    size = _vit(pos_embed_interp='size')
    ref = _vit(pos_embed_interp='reference')
    for vit in (plain, size, ref):
        vit.load_state_dict(student_weights, strict=True)
    x = reference['inputs']['x_extra']  # 160x128 -> 10x8 patches
    expected = reference['outputs']['extra_tokens']
    with torch.no_grad():
        tokens_plain, tokens_size, tokens_ref = (
            v(x)[0] for v in (plain, size, ref))
        at_224 = [v(reference['inputs']['x'])[0] for v in (size, ref)]
    # 'size' is mmpretrain's behaviour, bit for bit
    torch.testing.assert_close(tokens_size, tokens_plain, rtol=0, atol=0)
    # ... which is off by about 0.035, as the README says
    gap = (tokens_size - expected).abs().max().item()
    assert 0.02 < gap < 0.05, gap
    # the reference interpolation gives the authors' tokens
    torch.testing.assert_close(tokens_ref, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        tokens_ref[:, 0], reference['outputs']['extra_cls'], rtol=0,
        atol=1e-5)
    # at 224x224 no interpolation happens: both equal the fixture
    torch.testing.assert_close(at_224[0], at_224[1], rtol=0, atol=0)
    torch.testing.assert_close(
        at_224[1], reference['outputs']['tokens'], rtol=0, atol=1e-5)


def test_option_validation_and_defaults():
    with pytest.raises(ValueError, match='pos_embed_interp'):
        _vit(pos_embed_interp='bilinear')
    cfg = with_pos_embed_interp(
        dict(type='VisionTransformer', arch='deit-tiny'), VisionTransformer,
        'reference')
    assert cfg['type'] is CrIBoVisionTransformer
    assert cfg['pos_embed_interp'] == 'reference'
    with pytest.raises(ValueError, match='VisionTransformer backbone'):
        with_pos_embed_interp(dict(type='ResNet'), torch.nn.Conv2d,
                              'reference')
    official = dict(meta=dict(converted_from='official CrIBo checkpoint'))
    assert default_pos_embed_interp(official) == 'reference'
    assert default_pos_embed_interp(dict(meta=dict(epoch=3))) == 'size'
    assert default_pos_embed_interp({'state_dict': {}}) == 'size'
    # registered: configs switch with type='CrIBoVisionTransformer'
    from cribo_mm.registry import MODELS
    assert MODELS.get('CrIBoVisionTransformer') is CrIBoVisionTransformer


def _tiny_seg_config(tmp_path):
    """Two 32x32 images with label maps and a dataset config for them."""
    import numpy as np
    from PIL import Image
    root = tmp_path / 'seg'
    for split in ('train', 'val'):
        (root / 'img' / split).mkdir(parents=True)
        (root / 'ann' / split).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(
                root / 'img' / split / f'{i}.png')
            Image.fromarray(np.full((32, 32), i, np.uint8)).save(
                root / 'ann' / split / f'{i}.png')

    def dataset(split):
        return dict(
            type='BaseSegDataset', data_root=str(root),
            data_prefix=dict(img_path=f'img/{split}',
                             seg_map_path=f'ann/{split}'),
            img_suffix='.png', seg_map_suffix='.png',
            metainfo=dict(classes=('a', 'b')),
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadAnnotations')])

    config = tmp_path / 'seg_data.py'
    config.write_text(f'train_dataloader = dict(dataset={dataset("train")!r})'
                      f'\nval_dataloader = dict(dataset={dataset("val")!r})\n')
    return str(config)


def test_dense_nn_tool_uses_the_reference_for_converted_checkpoints(
        student_weights, tmp_path, monkeypatch):
    """'auto': converted official weights get the reference interpolation
    in the dense-NN tool, other checkpoints mmpretrain's."""
    from cribo_mm.evaluation.dense_nn import (build_backbone,
                                              extract_patch_features)
    from cribo_mm.models.utils.checkpoint_formats import \
        make_backbone_checkpoint
    from tests.engine.tiny_config import ROOT, import_tool
    vit = dict(
        type='VisionTransformer',
        arch=dict(TINY_ARCH),
        img_size=224,
        patch_size=16,
        qkv_bias=True)
    built = build_backbone(dict(vit), pos_embed_interp='reference')
    assert type(built) is CrIBoVisionTransformer
    assert built.pos_embed_interp == 'reference'
    assert type(build_backbone(dict(vit))) is VisionTransformer
    # a config naming the class directly also gets raw tokens
    direct = build_backbone(dict(vit, type='CrIBoVisionTransformer'))
    assert direct.out_type == 'raw' and direct.pos_embed_interp == 'size'

    path = ROOT / 'tools' / 'analysis' / 'dense_nn_retrieval.py'
    tool = import_tool(path, 'dense_nn_tool')
    chosen = {}

    def fake_run(backbone, *args, **kwargs):  # stop after the backbone
        chosen['type'] = type(backbone)
        chosen['interp'] = getattr(backbone, 'pos_embed_interp', 'size')
        chosen['tokens'] = extract_patch_features(
            backbone, torch.zeros(1, 3, 160, 128), 16)
        raise RuntimeError('stop')

    monkeypatch.setattr('cribo_mm.evaluation.dense_nn.'
                        'run_dense_nn_retrieval', fake_run)
    config = tmp_path / 'vit.py'
    config.write_text(f'model = dict(backbone={vit!r})\n')
    official = tmp_path / 'official_backbone.pth'
    torch.save(
        make_backbone_checkpoint(
            student_weights,
            dict(source='x.pth', converted_from='official CrIBo checkpoint')),
        official)
    ours = tmp_path / 'ours.pth'
    torch.save({'state_dict': dict(student_weights)}, ours)
    data = _tiny_seg_config(tmp_path)
    runs = {}
    for name, ckpt, extra in (('official', official, []),
                              ('ours', ours, []),
                              ('forced', official, ['--pos-embed-interp',
                                                    'size'])):
        with pytest.raises(RuntimeError, match='stop'):
            tool.main([
                str(config), str(ckpt), '--dataset', data,
                '--no-progress', *extra
            ])
        runs[name] = dict(chosen)
    assert runs['official']['interp'] == 'reference'
    assert runs['ours']['type'] is VisionTransformer
    assert runs['forced']['type'] is VisionTransformer
    # same weights: only the interpolation differs
    assert not torch.equal(runs['official']['tokens'],
                           runs['forced']['tokens'])
    torch.testing.assert_close(runs['ours']['tokens'],
                               runs['forced']['tokens'], rtol=0, atol=0)
