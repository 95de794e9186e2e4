# Copyright (c) cribo-mm contributors. All rights reserved.
"""Mixed precision: CrIBoAmpOptimWrapper, --amp and the fp32 regions."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import cribo_mm  # noqa: F401
from cribo_mm.engine.optimizers import (CrIBoAmpOptimWrapper, enable_amp,
                                        resolve_amp_settings)
from cribo_mm.models.utils import cluster_two_views, sinkhorn_knopp
from cribo_mm.models.utils.precision import fp32_region
from cribo_mm.registry import OPTIM_WRAPPERS
from tests.engine.tiny_config import ROOT, import_tool
from tests.models.test_cribo_algorithm import fake_batch, tiny_cribo


@pytest.fixture(autouse=True)
def _max_iters():
    MessageHub.get_instance('cribo_bf16_test').update_info('max_iters', 10)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


def _matmul_dtype():
    """The dtype a float32 matmul produces under the current autocast."""
    return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype


def test_resolve_amp_settings(no_cuda):
    assert resolve_amp_settings() == ('cpu', torch.bfloat16)
    assert resolve_amp_settings('bfloat16', 'cpu') == ('cpu', torch.bfloat16)
    assert resolve_amp_settings(torch.bfloat16) == ('cpu', torch.bfloat16)
    with pytest.raises(ValueError, match='bfloat16'):
        resolve_amp_settings('float16')  # fp16 on a CPU
    with pytest.raises(RuntimeError, match='CUDA is not available'):
        resolve_amp_settings('auto', 'cuda')
    with pytest.raises(ValueError, match='OptimWrapper'):
        resolve_amp_settings('float32')
    with pytest.raises(ValueError, match="'int8'"):
        resolve_amp_settings('int8')
    with pytest.raises(ValueError, match='device_type'):
        resolve_amp_settings('auto', 'tpu')


def test_resolve_amp_settings_gpu_default_is_fp16(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert resolve_amp_settings() == ('cuda', torch.float16)
    assert resolve_amp_settings('bfloat16') == ('cuda', torch.bfloat16)


def test_fp32_region_disables_the_autocast_of_its_device():
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert _matmul_dtype() == torch.bfloat16
        with fp32_region(torch.device('cpu')):
            assert _matmul_dtype() == torch.float32
        assert _matmul_dtype() == torch.bfloat16
    assert _matmul_dtype() == torch.float32


def test_clustering_is_float32_and_identical_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 2 * 9, 16, generator=g)
    positions = torch.rand(2, 2 * 9, 2, generator=g) * 100
    init = torch.stack([torch.randperm(18, generator=g)[:4] for _ in range(2)])
    cost = torch.rand(2, 18, 4, generator=g)
    marg_r = torch.full((2, 18, 1), 1 / 18)
    marg_c = torch.full((2, 1, 4), 1 / 4)
    ref_assign, _ = cluster_two_views(tokens, positions, 4, 1.0,
                                      init_index=init)
    ref_plan, _ = sinkhorn_knopp(cost, marg_r, marg_c)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assign, _ = cluster_two_views(tokens.bfloat16(), positions, 4, 1.0,
                                      init_index=init)
        plan, _ = sinkhorn_knopp(cost, marg_r, marg_c)
    assert assign.dtype == plan.dtype == torch.float32
    assert torch.equal(plan, ref_plan)
    # bf16 tokens: the same clustering of the rounded tokens, in fp32
    ref_rounded, _ = cluster_two_views(tokens.bfloat16().float(), positions,
                                       4, 1.0, init_index=init)
    assert torch.equal(assign, ref_rounded)
    assert ref_assign.shape == assign.shape


def _record(model, monkeypatch):
    """Record dtypes inside the parts of a CrIBo step."""
    from cribo_mm.models.losses import cribo_loss
    from cribo_mm.models.utils import clustering
    seen = {}

    def backbone_hook(module, args, output):
        seen['qkv'] = output.dtype

    # a linear layer of the backbone (its residual stream adds float32
    # position embeddings, so it stays float32 like under CUDA autocast)
    model.backbone.layers[0].attn.qkv.register_forward_hook(backbone_hook)

    def probe(name, fn):

        def wrapped(*args, **kwargs):
            seen[name + '_matmul'] = _matmul_dtype()
            out = fn(*args, **kwargs)
            seen[name] = out
            return out

        return wrapped

    # inside the clustering and the loss: the functions they call
    monkeypatch.setattr(clustering, 'sinkhorn_knopp',
                        probe('sinkhorn', clustering.sinkhorn_knopp))
    monkeypatch.setattr(
        cribo_loss, 'paired_soft_cross_entropy',
        probe('soft_cross_entropy', cribo_loss.paired_soft_cross_entropy))
    # the bank methods, as called by the model
    model.memory_bank.retrieve = probe('retrieve', model.memory_bank.retrieve)
    model.memory_bank.update = probe('update', model.memory_bank.update)
    model.object_pooling.cluster = probe('cluster',
                                         model.object_pooling.cluster)
    model.head.forward = probe('loss', model.head.forward)
    return seen


def test_bf16_train_step_on_cpu(no_cuda, monkeypatch):
    model = tiny_cribo()
    model.train()
    before = copy.deepcopy(model.backbone.state_dict())
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    wrapper = OPTIM_WRAPPERS.build(
        dict(type='CrIBoAmpOptimWrapper', optimizer=optimizer))
    assert isinstance(wrapper, CrIBoAmpOptimWrapper)
    assert wrapper.cast_dtype == torch.bfloat16
    assert wrapper.device_type == 'cpu' and wrapper.loss_scaler is None
    seen = _record(model, monkeypatch)
    log_vars = model.train_step(fake_batch(batch_size=4), wrapper)

    assert seen['qkv'] == torch.bfloat16  # the backbone runs in bf16
    # clustering, bank matching/update and losses in float32
    assert seen['cluster_matmul'] == torch.bfloat16  # the caller's region
    for part in ('sinkhorn', 'retrieve', 'update', 'soft_cross_entropy'):
        assert seen[part + '_matmul'] == torch.float32, part
    assert seen['cluster'].centroids_v1.dtype == torch.float32
    assert {k: v.dtype for k, v in seen['loss'].items()} == {
        k: torch.float32 for k in seen['loss']}
    assert model.head.center.dtype == model.head.center_c.dtype == \
        torch.float32
    assert model.memory_bank.objects.dtype == torch.float32
    # fp32 master weights and optimizer state, finite and updated
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for state in optimizer.state.values():
        assert state['exp_avg'].dtype == torch.float32
    assert all(torch.isfinite(torch.as_tensor(v)) for v in log_vars.values())
    assert not torch.equal(before['layers.0.attn.qkv.weight'],
                           model.backbone.layers[0].attn.qkv.weight)
    # outside the step nothing is autocast any more
    assert _matmul_dtype() == torch.float32
    assert 'loss_scaler' not in wrapper.state_dict()


def test_bf16_refuses_loss_scale_and_fp16_refuses_cpu(no_cuda):
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match='never scaled'):
        CrIBoAmpOptimWrapper(
            torch.optim.SGD(params, lr=0.1), dtype='bfloat16',
            loss_scale=512.)
    with pytest.raises(ValueError, match='needs a GPU'):
        CrIBoAmpOptimWrapper(
            torch.optim.SGD(params, lr=0.1), dtype='float16')


def test_bf16_loads_an_fp16_checkpoint_state(no_cuda):
    """A GPU fp16 run (AmpOptimWrapper state with a loss scaler) resumes on a
    CPU in bf16: the optimizer state is restored, the scale ignored."""
    param = torch.nn.Parameter(torch.ones(3))
    source = torch.optim.AdamW([param], lr=0.1)
    param.grad = torch.ones(3)
    source.step()
    state = dict(source.state_dict(), loss_scaler={'scale': 1024.})
    wrapper = CrIBoAmpOptimWrapper(
        torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1))
    wrapper.load_state_dict(state)
    restored = wrapper.optimizer.state_dict()['state'][0]
    assert torch.equal(restored['exp_avg'], source.state[param]['exp_avg'])


def _train_tool():
    return import_tool('tools/train.py', 'cribo_train_tool')


@pytest.mark.parametrize('config', [
    'configs/cribo/vit-t16_demo.py',  # OptimWrapper
    'configs/cribo/vit-s16_coco.py',  # AmpOptimWrapper (fp16 on a GPU)
])
def test_amp_flag_selects_bf16_on_cpu(no_cuda, config, capsys):
    tool = _train_tool()
    args = tool.parse_args([str(ROOT / config), '--amp'])
    cfg = tool.merge_args(Config.fromfile(args.config), args)
    assert 'bf16 autocast on the CPU' in capsys.readouterr().out
    assert cfg.optim_wrapper.type == 'CrIBoAmpOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    model = torch.nn.Linear(4, 4)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, CrIBoAmpOptimWrapper)
    assert wrapper.cast_dtype == torch.bfloat16
    assert wrapper.device_type == 'cpu'


def test_enable_amp_keeps_fp16_and_loss_scale_on_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = dict(type='AmpOptimWrapper', loss_scale=512., dtype=None,
               optimizer=dict(type='AdamW', lr=1e-3))
    message = enable_amp(cfg)
    assert cfg['type'] == 'CrIBoAmpOptimWrapper'
    assert cfg['dtype'] == 'auto' and cfg['loss_scale'] == 512.
    assert message.startswith('--amp: fp16 autocast on CUDA')
    cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
    assert 'dynamic loss scaling' in enable_amp(cfg)
    assert cfg['loss_scale'] == 'dynamic'
    cfg = dict(type='OptimWrapper', dtype='bfloat16',
               optimizer=dict(type='AdamW', lr=1e-3))
    assert 'bf16 autocast on CUDA' in enable_amp(cfg)
    with pytest.raises(ValueError, match='use_fsdp'):
        enable_amp(dict(type='AmpOptimWrapper', use_fsdp=True))
