# Copyright (c) cribo-mm contributors. All rights reserved.
"""Every way the project opens a checkpoint refuses every payload, and our
own files still load through each of them."""
import functools
import importlib.util
import tempfile
import os
import sys

import pytest
import torch
from torch import nn

import cribo_mm  # noqa: F401  (installs the mmengine loaders)
from cribo_mm.utils import checkpoint_io as cio
from cribo_mm.utils.checkpoint_io import CheckpointError
from tests.engine.tiny_config import DEMO_CONFIG, ROOT, import_tool
from tests.security.payloads import PAYLOAD_NAMES

# the hand-built payloads use pickle protocol 4, which torch warns about
pytestmark = pytest.mark.filterwarnings('ignore:Detected pickle protocol')

CONVERTERS = ('cribo2mmseg', 'orl2mmseg', 'official2cribo_mm')
LOADERS = CONVERTERS + ('dense_nn', 'mmengine_load_checkpoint',
                        'mmengine_checkpoint_loader', 'init_cfg_pretrained',
                        'init_cfg_prefix')


@pytest.fixture(autouse=True)
def _no_unsafe_env(monkeypatch):
    # set (not deleted) so that monkeypatch restores it after tests that
    # call request_unsafe_load()
    monkeypatch.setenv(cio.UNSAFE_LOAD_ENV, '0')


@functools.lru_cache(maxsize=None)
def converter(name):
    return import_tool(f'tools/model_converters/{name}.py', name)


class _WithBackbone(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(2, 2)


def _load_with(loader, path, out):
    """Open ``path`` the way ``loader`` does."""
    if loader in CONVERTERS:
        return converter(loader).main([path, out])
    if loader == 'dense_nn':
        from cribo_mm.evaluation.dense_nn import load_backbone_weights
        return load_backbone_weights(nn.Linear(2, 2), path)
    if loader == 'mmengine_load_checkpoint':  # load_from, tools/test.py
        from mmengine.runner import load_checkpoint
        return load_checkpoint(_WithBackbone(), path, map_location='cpu')
    if loader == 'mmengine_checkpoint_loader':  # Runner.resume, mmseg
        from mmengine.runner import CheckpointLoader
        return CheckpointLoader.load_checkpoint(path, map_location='cpu')
    from mmengine.model import BaseModule

    class Model(BaseModule):

        def __init__(self, init_cfg):
            super().__init__(init_cfg)
            self.fc = nn.Linear(2, 2)

    init_cfg = dict(type='Pretrained', checkpoint=path)
    if loader == 'init_cfg_prefix':
        init_cfg['prefix'] = 'backbone.'
    model = Model(init_cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('loader', LOADERS)
@pytest.mark.parametrize('name', PAYLOAD_NAMES)
def test_loader_refuses_payload(loader, name, payloads, tmp_path):
    payload = payloads.files[name]
    out = tmp_path / 'out.pth'
    with pytest.raises(CheckpointError) as info:
        _load_with(loader, payload.path, str(out))
    payloads.assert_untouched(name)
    assert not out.exists()
    assert payload.culprit in str(info.value)
    assert '--unsafe-load' in str(info.value)


@pytest.mark.parametrize('loader', LOADERS[3:])
def test_loader_reads_our_files(loader, tmp_path):
    """A tensors-only file and a Runner-like file (message hub) load."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_loader_reads_our_files')
    hub.update_scalar('train/loss', 1.0)
    weights = {
        f'{prefix}{name}': value
        for prefix in ('', 'backbone.', 'backbone.fc.', 'fc.')
        for name, value in (('weight', torch.ones(2, 2)),
                            ('bias', torch.zeros(2)))
    }
    path = tmp_path / 'ours.pth'
    torch.save(dict(state_dict=weights, message_hub=hub.state_dict(),
                    meta=dict(epoch=1)), path)
    out = _load_with(loader, str(path), str(tmp_path / 'out.pth'))
    if loader == 'dense_nn':
        assert out['loaded'] == 2
    elif loader.startswith('init_cfg'):
        assert torch.equal(out.fc.weight, torch.ones(2, 2))
    else:
        assert torch.equal(out['state_dict']['backbone.weight'],
                           torch.ones(2, 2))
        assert out['message_hub']['log_scalars']['train/loss'].mean() == 1


def test_unsafe_load_flag_of_a_converter(tmp_path, payloads):
    """--unsafe-load unpickles (with a warning naming the file)."""
    import datetime
    src = tmp_path / 'trusted.pth'
    torch.save(
        dict(
            meta=dict(day=datetime.date(2024, 1, 2)),
            state_dict={'backbone.conv1.weight': torch.zeros(64, 3, 7, 7)}),
        src)
    tool = converter('orl2mmseg')
    with pytest.raises(CheckpointError, match='datetime.date'):
        tool.main([str(src), str(tmp_path / 'o.pth')])
    with pytest.warns(cio.UnsafeLoadWarning, match='trusted.pth'):
        # loads, then fails later for the incomplete ResNet, not the load
        with pytest.raises(CheckpointError, match='ResNet|conv|layer'):
            tool.main([str(src), str(tmp_path / 'o.pth'), '--unsafe-load'])
    for name in CONVERTERS:
        assert converter(name).parse_args(['a', 'b', '--unsafe-load'
                                           ]).unsafe_load


@pytest.mark.parametrize('tool,argv', [
    ('train.py', ['CFG']),
    ('test.py', ['CFG', 'CKPT']),
    ('analysis/dense_nn_retrieval.py', ['CFG', 'CKPT']),
    ('analysis/visualize_objects.py', ['CFG', 'CKPT']),
    ('analysis/visualize_neighbours.py', ['CFG', 'CKPT']),
    ('orl/knn_images.py', ['CFG', 'CKPT', '--out', 'o.json']),
    ('orl/roi_pairs.py', ['CFG', 'CKPT', '--knn', 'k', '--proposals', 'p',
                          '--out', 'o.json']),
])
def test_tools_have_the_switch(tool, argv):
    """Every tool that opens a checkpoint takes --unsafe-load (off by
    default)."""
    path = ROOT / 'tools' / tool
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(
            f'tool_{path.stem}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.parse_args(argv + ['--unsafe-load']).unsafe_load
        assert not module.parse_args(argv).unsafe_load
    finally:
        sys.path.remove(str(path.parent))


def test_train_switch_sets_the_environment(monkeypatch):
    """tools/train.py --unsafe-load reaches the Runner through the
    environment."""
    spec = importlib.util.spec_from_file_location(
        'train_tool', ROOT / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seen = {}

    def fake_merge(cfg, args):
        seen['env'] = os.environ.get(cio.UNSAFE_LOAD_ENV)
        raise SystemExit(0)

    monkeypatch.setattr(module, 'merge_args', fake_merge)
    monkeypatch.setattr(module.Config, 'fromfile', lambda path: None)
    with pytest.raises(SystemExit):
        module.main(['CFG', '--unsafe-load'])
    assert seen['env'] == '1'


def test_visualization_loader_refuses_payload(payloads):
    from cribo_mm.visualization import load_cribo_model
    payload = payloads.files['dotted_numpy']
    with pytest.raises(CheckpointError, match='numpy.testing'):
        load_cribo_model(str(DEMO_CONFIG), payload.path)
    payloads.assert_untouched('dotted_numpy')


def test_orl_stage1_loader_refuses_payload(payloads):
    from mmengine.config import Config

    from cribo_mm.orl_mining import build_stage1_network
    cfg = Config.fromfile(
        str(ROOT / 'configs' / 'orl' / 'byol_resnet18-tiny_demo.py'))
    payload = payloads.files['numpy_memmap']
    with pytest.raises(CheckpointError, match='numpy.memmap'):
        build_stage1_network(cfg, payload.path)
    payloads.assert_untouched('numpy_memmap')


@pytest.mark.parametrize('url', [
    'https://example.invalid/models/evil.pth',
    's3://bucket/models/evil.pth',
    'petrel://bucket/models/evil.pth',
])
def test_remote_schemes_go_through_the_policy(url, payloads, tmp_path,
                                              monkeypatch):
    """mmengine's http(s) and object-storage loaders are replaced: the file
    is fetched (stubbed here), then refused like a local one."""
    import shutil

    import mmengine.fileio
    from mmengine.runner import CheckpointLoader
    payload = payloads.files['dotted_argparse']

    def download(src, dst, progress=False):
        shutil.copy(payload.path, dst)

    class Backend:

        def get(self, filename):
            with open(payload.path, 'rb') as f:
                return f.read()

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    monkeypatch.setattr(mmengine.fileio, 'get_file_backend',
                        lambda *args, **kwargs: Backend())
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    with pytest.raises(CheckpointError, match='argparse._os.system') as err:
        CheckpointLoader.load_checkpoint(url, map_location='cpu')
    payloads.assert_untouched('dotted_argparse')
    if not url.startswith('https'):  # not the deleted temporary copy
        assert url in str(err.value)
        assert tempfile.gettempdir() not in str(err.value)
        assert 'argparse._os.system' in err.value.globals


def test_runner_checkpoint_resumes_without_the_switch(tmp_path):
    """A real mmengine Runner checkpoint (message hub, optimizer, schedulers)
    resumes under the policy, with no unsafe load."""
    import warnings

    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.fc(torch.stack(inputs))
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

    class Count(Hook):

        def __init__(self):
            self.iters = []

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.iters.append(runner.iter)

    def runner(work_dir, max_iters, resume_from=None):
        return Runner(
            model=Toy(),
            work_dir=str(work_dir),
            train_dataloader=dict(
                dataset=[dict(inputs=torch.ones(2) * i) for i in range(8)],
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='pseudo_collate'),
                batch_size=2),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1,
                                              momentum=0.9)),
            param_scheduler=dict(type='LinearLR', begin=0, end=4),
            train_cfg=dict(by_epoch=False, max_iters=max_iters),
            default_hooks=dict(
                checkpoint=dict(type='CheckpointHook', interval=2,
                                by_epoch=False)),
            load_from=resume_from,
            resume=resume_from is not None,
            custom_hooks=[Count()],
            default_scope='mmengine',
            experiment_name=f'resume_{max_iters}')

    # the Runners' default scope must not outlive the test
    with DefaultScope.overwrite_default_scope('mmengine'):
        first = runner(tmp_path / 'a', 2)
        first.train()
        ckpt = str(tmp_path / 'a' / 'iter_2.pth')
        assert set(cio.checkpoint_globals(ckpt)) <= set(cio._all_allowed())
        second = runner(tmp_path / 'b', 4, ckpt)
        with warnings.catch_warnings():
            warnings.simplefilter('error', cio.UnsafeLoadWarning)
            second.train()
    count = [h for h in second.hooks if isinstance(h, Count)][0]
    assert count.iters == [2, 3], 'did not resume from iteration 2'
    assert torch.equal(
        cio.load_checkpoint_file(ckpt)['state_dict']['fc.weight'],
        first.model.fc.weight.detach())
