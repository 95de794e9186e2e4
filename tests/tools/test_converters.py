# Copyright (c) cribo-mm contributors. All rights reserved.
"""Checkpoint conversion: ``cribo_mm.models.utils.checkpoint_formats`` and
the CLIs in ``tools/model_converters/`` (their loading policy is tested in
``tests/security/``).

The authors' checkpoint layout is exercised with
``official_checkpoint_tiny.pth`` (a depth-2 ViT-T with a 256-wide head, see
the fixtures' README, section 7) and the converted weights are checked
against the reference outputs of ``head_and_backbone.pt``.
"""
import argparse
import copy
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cribo_mm.models.utils.checkpoint_formats import (
    extract_backbone, infer_head_arch, infer_vit_arch,
    legacy_weight_norm_to_parametrized, make_backbone_checkpoint,
    mmpretrain_vit_to_official, official_to_cribo_mm,
    official_vit_to_mmpretrain, parametrized_weight_norm_to_legacy, strip_ddp,
    strip_prefix)
from cribo_mm.utils.checkpoint_io import (CheckpointError,
                                          load_checkpoint_file,
                                          save_checkpoint)
from tests.engine.tiny_config import import_tool
from tests.fixtures import FIXTURES, load_fixture

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / 'tools' / 'model_converters'
OFFICIAL = FIXTURES / 'official_checkpoint_tiny.pth'
TINY_ARCH = dict(
    embed_dims=192, num_layers=2, num_heads=3, feedforward_channels=768)


def _tool(name):
    return import_tool(TOOLS / f'{name}.py', name)


@pytest.fixture(scope='module')
def official():
    if not OFFICIAL.is_file():
        pytest.skip(f'reference fixture {OFFICIAL} not available')
    return load_checkpoint_file(str(OFFICIAL))


@pytest.fixture(scope='module')
def reference():
    return load_fixture('head_and_backbone.pt')


@pytest.fixture(scope='module')
def converted(official):
    return official_to_cribo_mm(official)


def _vit(**kwargs):
    from mmpretrain.models import VisionTransformer
    cfg = dict(
        arch=dict(TINY_ARCH),
        img_size=224,
        patch_size=16,
        out_type='raw',
        final_norm=True,
        qkv_bias=True)
    cfg.update(kwargs)
    vit = VisionTransformer(**cfg)
    vit.eval()  # mmpretrain's train() returns None: do not chain
    return vit


def _head():
    from cribo_mm.models.necks.projection_head import CrIBoProjectionHead
    return CrIBoProjectionHead(
        in_channels=192,
        out_channels=64,
        out_channels_objects=48,
        hidden_channels=256,
        bottleneck_channels=256).eval()


# ----------------------------------------------------------------------
# loading the authors' layout
# ----------------------------------------------------------------------
def test_official_checkpoint_loads_with_its_namespace(official):
    assert isinstance(official['args'], argparse.Namespace)
    assert official['args'].arch == 'vit_tiny'


# ----------------------------------------------------------------------
# key mapping
# ----------------------------------------------------------------------
def test_vit_key_mapping_round_trip(official):
    source = strip_prefix(official['teacher'], 'backbone.')
    mapped = official_vit_to_mmpretrain(source)
    assert 'patch_embed.projection.weight' in mapped
    assert 'layers.1.ffn.layers.0.0.weight' in mapped
    assert 'layers.0.ffn.layers.1.bias' in mapped
    assert 'ln1.weight' in mapped and 'layers.1.ln2.bias' in mapped
    assert set(mapped) == set(_vit().state_dict())
    back = mmpretrain_vit_to_official(mapped)
    assert list(back) == list(source)
    for key in source:
        assert back[key] is source[key]


def test_vit_key_mapping_rejects_unknown_keys():
    with pytest.raises(CheckpointError, match='blocks.0.attn.relative'):
        official_vit_to_mmpretrain({
            'cls_token':
            torch.zeros(1),
            'blocks.0.attn.relative_position_bias_table':
            torch.zeros(1)
        })


def test_weight_norm_key_round_trip(official):
    head = strip_prefix(official['teacher'], 'head.')
    new = legacy_weight_norm_to_parametrized(head)
    assert 'last_layer.parametrizations.weight.original0' in new
    assert 'last_layer_c.parametrizations.weight.original1' in new
    assert set(new) == set(_head().state_dict())
    assert parametrized_weight_norm_to_legacy(new) == head


def test_architecture_from_shapes_not_args(official):
    """args.arch says vit_tiny (depth 12, head 2048): shapes say otherwise."""
    assert official['args'].arch == 'vit_tiny'
    backbone = official_vit_to_mmpretrain(
        strip_prefix(strip_ddp(official['student']), 'backbone.'))
    info = infer_vit_arch(backbone)
    assert info['arch'] == TINY_ARCH
    assert info['patch_size'] == 16 and info['img_size'] == 224
    head = infer_head_arch(strip_prefix(official['teacher'], 'head.'))
    assert head == dict(
        in_channels=192,
        out_channels=64,
        out_channels_objects=48,
        hidden_channels=256,
        bottleneck_channels=256,
        num_layers=3,
        use_bn=False)


# ----------------------------------------------------------------------
# official -> cribo_mm
# ----------------------------------------------------------------------
def _build_cribo(meta):
    from mmpretrain.registry import MODELS

    import cribo_mm.models  # noqa: F401
    model = meta['cribo_mm_model']
    return MODELS.build(
        dict(
            type='CrIBo',
            backbone=model['backbone'],
            neck=model['neck'],
            head=model['head'],
            object_pooling=dict(type='CrIBoObjectPooling', num_clusters=8),
            memory_bank=model['memory_bank'],
            patch_size=model['patch_size']))


def test_official_to_cribo_mm_loads_strictly(official, converted, tmp_path):
    state, meta = converted['state_dict'], converted['meta']
    model = _build_cribo(meta)
    model.load_state_dict(state, strict=True)

    teacher = strip_ddp(official['teacher'])
    student = strip_ddp(official['student'])
    # the teacher and the student really are distinct networks
    assert not torch.equal(teacher['backbone.cls_token'],
                           student['backbone.cls_token'])
    sd = model.state_dict()
    assert torch.equal(sd['teacher.module.0.cls_token'],
                       teacher['backbone.cls_token'])
    assert torch.equal(sd['backbone.cls_token'], student['backbone.cls_token'])
    assert torch.equal(sd['teacher.module.0.layers.1.ffn.layers.1.weight'],
                       teacher['backbone.blocks.1.mlp.fc2.weight'])
    assert torch.equal(sd['teacher.module.0.ln1.bias'],
                       teacher['backbone.norm.bias'])
    assert torch.equal(
        sd['teacher.module.1.last_layer_c.parametrizations.weight.original0'],
        teacher['head.last_layer_c.weight_g'])
    assert torch.equal(sd['neck.last_layer.parametrizations.weight.original1'],
                       student['head.last_layer.weight_v'])
    assert torch.equal(sd['head.center'], official['dino_loss']['center'])
    assert torch.equal(sd['head.center_c'], official['dino_loss']['center_c'])
    assert torch.equal(sd['memory_bank.objects'],
                       official['centroids_queue_cpu'])
    assert torch.equal(sd['memory_bank.cls'], official['cls_queue_cpu'])
    assert sd['memory_bank.objects_per_image'].dtype == torch.long
    assert torch.equal(sd['memory_bank.objects_per_image'],
                       official['cpv_queue_cpu'].long())
    assert int(sd['memory_bank.num_inserted']) == 8
    assert int(sd['teacher.steps']) > 0
    assert meta['epoch'] == 1
    assert meta['official_args']['arch'] == 'vit_tiny'

    # tensors only: loads with the default weights_only=True, no allow-list
    path = tmp_path / 'converted.pth'
    save_checkpoint(converted, str(path))
    reloaded = torch.load(path, weights_only=True)
    assert set(reloaded['state_dict']) == set(state)


def test_converted_teacher_survives_first_ema_update(converted):
    """teacher.steps > 0: the first EMA update blends, it does not copy."""
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('max_iters', 100)
    model = _build_cribo(converted['meta'])
    model.load_state_dict(converted['state_dict'], strict=True)
    teacher_before = model.teacher.module[0].cls_token.detach().clone()
    student = model.backbone.cls_token.detach().clone()
    with torch.no_grad():
        model.teacher.update_parameters(
            torch.nn.Sequential(model.backbone, model.neck))
    after = model.teacher.module[0].cls_token
    assert not torch.equal(after, student)
    assert torch.allclose(
        after,
        teacher_before,
        atol=0.05 * (student - teacher_before).abs().max().item())


def test_teacher_steps_options(official):
    out = official_to_cribo_mm(official, iters_per_epoch=50)
    assert int(out['state_dict']['teacher.steps']) == 50
    out = official_to_cribo_mm(official, teacher_steps=7, num_inserted=3)
    assert int(out['state_dict']['teacher.steps']) == 7
    assert int(out['state_dict']['memory_bank.num_inserted']) == 3
    with pytest.raises(CheckpointError, match='> 0'):
        official_to_cribo_mm(official, teacher_steps=0)


@pytest.mark.parametrize('broken', [
    'no_dino_loss', 'no_queue', 'missing_block_key', 'extra_key', 'bad_queue',
    'not_official'
])
def test_official_validation(official, broken):
    bad = dict(official)
    bad['student'] = OrderedDict(official['student'])
    match = None
    if broken == 'no_dino_loss':
        del bad['dino_loss']
        match = 'dino_loss'
    elif broken == 'no_queue':
        del bad['cpv_queue_cpu']
        match = 'cpv_queue_cpu'
    elif broken == 'missing_block_key':
        del bad['student']['module.backbone.blocks.1.mlp.fc1.bias']
        match = 'layers.1.ffn.layers.0.0.bias'
    elif broken == 'extra_key':
        bad['student']['module.backbone.mask_token'] = torch.zeros(1)
        match = 'mask_token'
    elif broken == 'bad_queue':
        bad['cls_queue_cpu'] = torch.zeros(2, 3, 192)
        match = 'queues'
    else:
        bad = {'model': {}}
        match = 'layout'
    with pytest.raises(CheckpointError, match=match):
        official_to_cribo_mm(bad)


# ----------------------------------------------------------------------
# parity with the reference network outputs
# ----------------------------------------------------------------------
def test_backbone_parity(official, reference):
    vit = _vit()
    vit.load_state_dict(extract_backbone(official, 'student'), strict=True)
    with torch.no_grad():
        tokens = vit(reference['inputs']['x'])[0]
    torch.testing.assert_close(
        tokens, reference['outputs']['tokens'], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        tokens[:, 0], reference['outputs']['cls'], atol=1e-5, rtol=0)


def test_head_parity(converted, reference):
    head = _head()
    head.load_state_dict(
        strip_prefix(converted['state_dict'], 'neck.'), strict=True)
    out = reference['outputs']
    with torch.no_grad():
        torch.testing.assert_close(
            head(out['cls']), out['head_cls'], atol=1e-5, rtol=0)
        patches = out['tokens'][:, 1:].reshape(-1, 192)
        torch.testing.assert_close(
            head.forward_objects(patches),
            out['head_c_patch_tokens'],
            atol=1e-5,
            rtol=0)
        torch.testing.assert_close(
            head(out['extra_cls']), out['extra_head_cls'], atol=1e-5, rtol=0)


def _reference_resize(pos_embed,
                      src_shape,
                      dst_shape,
                      mode='bicubic',
                      num_extra_tokens=1):
    """The reference's position-embedding resize: bicubic with
    ``scale_factor = (h + 0.1) / 14, (w + 0.1) / 14`` instead of an output
    size (README section 7)."""
    if tuple(src_shape) == tuple(dst_shape):
        return pos_embed
    extra = pos_embed[:, :num_extra_tokens]
    grid = pos_embed[:, num_extra_tokens:]
    side, dim = src_shape[0], grid.shape[-1]
    grid = grid.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    h, w = dst_shape
    grid = F.interpolate(
        grid,
        scale_factor=((h + 0.1) / side, (w + 0.1) / side),
        mode='bicubic')
    assert tuple(grid.shape[-2:]) == (h, w)
    return torch.cat([extra, grid.flatten(2).transpose(1, 2)], dim=1)


def test_non_square_input_differs_only_by_pos_embed_interpolation(
        official, reference, monkeypatch):
    """160x128 input (10x8 patches): mmpretrain resizes ``pos_embed`` to an
    explicit size, the reference with a ``+0.1`` scale factor. Measured
    difference on this input: about 3.5e-2 in the tokens. Replicating the
    reference resize makes the converted weights match to 1e-5, so the
    conversion itself is exact and the gap is the interpolation only."""
    from mmpretrain.models.backbones import vision_transformer
    vit = _vit()
    vit.load_state_dict(extract_backbone(official, 'student'), strict=True)
    x = reference['inputs']['x_extra']
    expected = reference['outputs']['extra_tokens']
    with torch.no_grad():
        tokens = vit(x)[0]
    assert tokens.shape == expected.shape == (1, 81, 192)
    gap = (tokens - expected).abs().max().item()
    assert 1e-3 < gap < 0.2, gap
    # the CLS token goes through the same blocks, so it differs too, but the
    # difference must vanish with the reference interpolation:
    monkeypatch.setattr(vision_transformer, 'resize_pos_embed',
                        _reference_resize)
    with torch.no_grad():
        tokens = vit(x)[0]
    torch.testing.assert_close(tokens, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        tokens[:, 0], reference['outputs']['extra_cls'], atol=1e-5, rtol=0)


# ----------------------------------------------------------------------
# backbone extraction
# ----------------------------------------------------------------------
def test_extract_backbone_teacher_and_student(official, converted):
    for which in ('teacher', 'student'):
        from_official = extract_backbone(official, which)
        from_ours = extract_backbone(converted, which)
        assert list(from_official) == list(from_ours)
        for key in from_official:
            assert torch.equal(from_official[key], from_ours[key])
    teacher = extract_backbone(converted)  # default: teacher
    assert torch.equal(teacher['cls_token'],
                       official['teacher']['backbone.cls_token'])
    with pytest.raises(ValueError, match='teacher'):
        extract_backbone(converted, 'ema')


def test_extract_backbone_without_teacher(converted):
    only_student = {
        'state_dict': {
            k: v
            for k, v in converted['state_dict'].items()
            if not k.startswith('teacher.')
        }
    }
    with pytest.raises(CheckpointError, match='teacher'):
        extract_backbone(only_student, 'teacher')
    assert extract_backbone(only_student, 'student')


def test_backbone_file_loads_as_pretrained(official, tmp_path):
    """The backbone file loads with weights_only=True and through
    init_cfg=Pretrained(prefix='backbone.') with no missing key."""
    out = make_backbone_checkpoint(
        extract_backbone(official), dict(source='x', epoch=1))
    path = tmp_path / 'backbone.pth'
    save_checkpoint(out, str(path))
    loaded = torch.load(path, weights_only=True)
    assert loaded['meta']['arch'] == TINY_ARCH
    assert all(k.startswith('backbone.') for k in loaded['state_dict'])
    vit = _vit(
        img_size=64,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    vit.init_weights()
    weights = strip_prefix(loaded['state_dict'], 'backbone.')
    for key, value in vit.state_dict().items():
        if key == 'pos_embed':  # resized from 14x14 to 4x4
            assert value.shape == (1, 17, 192)
        else:
            assert torch.equal(value, weights[key]), key
    missing, unexpected = _vit().load_state_dict(weights, strict=False)
    assert missing == [] and unexpected == []


def test_save_checkpoint_refuses_objects(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint({'a': argparse.Namespace()}, str(tmp_path / 'x.pth'))


# ----------------------------------------------------------------------
# command-line tools
# ----------------------------------------------------------------------
def test_official2cribo_mm_cli(official, tmp_path, capsys):
    tool = _tool('official2cribo_mm')
    full = tmp_path / 'full.pth'
    assert tool.main([str(OFFICIAL), str(full), '--iters-per-epoch', '5']) == 0
    out = torch.load(full, weights_only=True)
    assert int(out['state_dict']['teacher.steps']) == 5
    model = _build_cribo(out['meta'])
    model.load_state_dict(out['state_dict'], strict=True)

    for extra, which in (([], 'teacher'), (['--student'], 'student')):
        path = tmp_path / f'{which}.pth'
        assert tool.main(
            [str(OFFICIAL), str(path), '--backbone-only'] + extra) == 0
        weights = torch.load(path, weights_only=True)['state_dict']
        assert torch.equal(
            weights['backbone.cls_token'],
            strip_ddp(official[which])['backbone.cls_token'])
    assert 'saved' in capsys.readouterr().out


def test_official2cribo_mm_cli_malformed(tmp_path):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(
        OFFICIAL.read_bytes()[:5000] if OFFICIAL.is_file() else b'x')
    with pytest.raises(CheckpointError, match='bad.pth'):
        _tool('official2cribo_mm').main([str(bad), str(tmp_path / 'o.pth')])


def test_cribo2mmseg_cli(official, converted, tmp_path):
    """Our layout (with mmengine objects, as a Runner writes it) -> backbone
    file; teacher by default, --student on request."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_cribo2mmseg_cli')
    hub.update_scalar('train/loss', 2.)
    runner_ckpt = dict(
        meta=dict(epoch=3, iter=30),
        state_dict=converted['state_dict'],
        message_hub=hub.state_dict())
    src = tmp_path / 'epoch_3.pth'
    torch.save(runner_ckpt, src)
    tool = _tool('cribo2mmseg')
    for extra, which in (([], 'teacher'), (['--student'], 'student')):
        dst = tmp_path / f'{which}_backbone.pth'
        assert tool.main([str(src), str(dst)] + extra) == 0
        out = torch.load(dst, weights_only=True)
        assert out['meta']['network'] == which
        assert out['meta']['epoch'] == 3
        expected = extract_backbone(official, which)
        weights = strip_prefix(out['state_dict'], 'backbone.', strict=True)
        assert list(weights) == list(expected)
        for key in weights:
            assert torch.equal(weights[key], expected[key])
    # the authors' layout is accepted too
    dst = tmp_path / 'from_official.pth'
    assert tool.main([str(OFFICIAL), str(dst)]) == 0
    assert torch.equal(
        torch.load(dst, weights_only=True)['state_dict']['backbone.ln1.bias'],
        official['teacher']['backbone.norm.bias'])


def test_converters_do_not_modify_inputs(official):
    before = copy.deepcopy(official)
    official_to_cribo_mm(official)
    extract_backbone(official)
    assert set(before) == set(official)
    for key, value in before['teacher'].items():
        assert torch.equal(value, official['teacher'][key])


def test_num_heads_only_for_standard_widths(official):
    backbone = extract_backbone(official)
    assert infer_vit_arch(backbone)['arch']['num_heads'] == 3
    assert infer_vit_arch(backbone, num_heads=4)['arch']['num_heads'] == 4
    narrow = {
        k: (v[..., :96] if k in ('cls_token', 'pos_embed') else v)
        for k, v in backbone.items()
    }
    assert infer_vit_arch(narrow)['arch']['num_heads'] is None
