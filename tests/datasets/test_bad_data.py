# Copyright (c) cribo-mm contributors. All rights reserved.
"""Bad training data: link loops, decompression bombs, skipped files,
datasets smaller than a batch, nothing or a broken file to resume from."""
import logging
import os
import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from cribo_mm.datasets import CrIBoImageFolder
from cribo_mm.datasets.folder import scan_images
from cribo_mm.datasets.transforms.loading import (DEFAULT_MAX_PIXELS,
                                                  CrIBoLoadImageFromFile,
                                                  ImageTooLargeError,
                                                  UnreadableImageError,
                                                  decode_image,
                                                  image_size_from_header)
from tests.engine.tiny_config import DEMO_CONFIG, import_tool


def _img(path, size=(24, 32), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
        path)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack('>I', len(data)) + kind + data +
            struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))


def _png_bomb(width: int, height: int) -> bytes:
    """A valid grayscale PNG of ``width x height`` zero pixels, compressed
    row by row (a few hundred kB for 20000 x 20000)."""
    comp = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    parts = [comp.compress(row) for _ in range(height)]
    data = b''.join(parts) + comp.flush()
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr) +
            _chunk(b'IDAT', data) + _chunk(b'IEND', b''))


# ----------------------------------------------------------------------------
# image folders


def test_symlink_loop_lists_every_image_once(tmp_path, caplog):
    root = tmp_path / 'imgs'
    _img(root / 'a' / 'x.png')
    _img(root / 'b' / 'y.jpg')
    os.symlink('..', root / 'a' / 'up')  # a/up -> imgs: a loop
    os.symlink(root / 'b', root / 'c')  # a second name of b
    os.symlink(root / 'a' / 'x.png', root / 'z.png')  # a second name of x
    files = scan_images(str(root))
    assert sorted(os.path.realpath(p) for p in files) == sorted([
        str((root / 'a' / 'x.png').resolve()),
        str((root / 'b' / 'y.jpg').resolve())
    ])
    assert files == [str(root / 'a' / 'x.png'), str(root / 'b' / 'y.jpg')]
    ds = CrIBoImageFolder(data_root=str(root))
    assert len(ds) == 2


def test_link_to_a_parent_of_the_scanned_folder(tmp_path):
    _img(tmp_path / 'photos' / 'a' / 'x.png')
    _img(tmp_path / 'photos' / 'b' / 'y.png')
    os.symlink(tmp_path / 'photos', tmp_path / 'photos' / 'a' / 'all')
    # scanning photos/a must not wander into photos/b through the link
    assert scan_images(str(tmp_path / 'photos' / 'a')) == [
        str(tmp_path / 'photos' / 'a' / 'x.png')
    ]
    ds = CrIBoImageFolder(data_root=str(tmp_path), data_prefix='photos/a')
    assert len(ds) == 1


def test_mmpretrain_class_folders_with_a_link_loop(tmp_path,
                                                   mmpretrain_scope):
    """mmpretrain's ImageNet/CustomDataset scan (mmengine's listing)."""
    from mmpretrain.datasets import CustomDataset
    for cls in ('n01', 'n02'):
        for k in range(2):
            _img(tmp_path / 'train' / cls / f'{cls}_{k}.JPEG', seed=k)
    os.symlink('..', tmp_path / 'train' / 'n01' / 'up')  # -> train
    os.symlink(tmp_path / 'train' / 'n02',
               tmp_path / 'train' / 'n02' / 'self')
    ds = CustomDataset(data_root=str(tmp_path / 'train'))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(infos) == 4
    for info in infos:  # every image once, in its own class
        cls = os.path.basename(os.path.dirname(info['img_path']))
        assert info['gt_label'] == ('n01', 'n02').index(cls)


def test_duplicates_are_reported(tmp_path, monkeypatch):
    from cribo_mm.datasets import folder
    messages = []
    monkeypatch.setattr(folder, 'print_log',
                        lambda msg, **kw: messages.append((msg, kw)))
    _img(tmp_path / 'a' / 'x.png')
    os.symlink('..', tmp_path / 'a' / 'loop')
    scan_images(str(tmp_path))
    assert len(messages) == 1
    msg, kw = messages[0]
    assert kw['level'] == logging.WARNING
    assert '1 folder(s)' in msg and 'loop' in msg
    messages.clear()
    _img(tmp_path / 'b.png')
    scan_images(str(tmp_path))  # no duplicate image yet: only the loop
    os.symlink(tmp_path / 'b.png', tmp_path / 'c.png')
    assert scan_images(str(tmp_path)) == [
        str(tmp_path / 'a' / 'x.png'), str(tmp_path / 'b.png')
    ]
    assert '1 image(s)' in messages[-1][0]


def test_pixel_limit_checked_from_header_before_decoding(tmp_path):
    bomb = _png_bomb(20000, 20000)
    assert len(bomb) < 1_000_000  # 400 M pixels in a small file
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(bomb, 'bomb.png')
    msg = str(info.value)
    assert 'bomb.png' in msg and '400000000 pixels' in msg
    assert str(DEFAULT_MAX_PIXELS) in msg
    # above our limit but below the size Pillow refuses to report
    mid = _png_bomb(12000, 9000)
    assert image_size_from_header(mid) == (12000, 9000)
    with pytest.raises(ImageTooLargeError, match='12000 x 9000'):
        decode_image(mid, 'mid.png')
    # a header that lies (the pixel data is garbage) is refused the same
    # way, which shows the size is checked before any decoder runs
    for png in (bomb, mid):
        fake = png[:33] + _chunk(b'IDAT', b'garbage') + _chunk(b'IEND', b'')
        with pytest.raises(ImageTooLargeError):
            decode_image(fake, 'fake.png')
    # a configurable limit; None disables it
    _img(tmp_path / 'small.png', size=(30, 40))
    load = CrIBoLoadImageFromFile(max_pixels=1000)
    with pytest.raises(ImageTooLargeError, match='40 x 30 = 1200 pixels'):
        load(dict(img_path=str(tmp_path / 'small.png')))
    out = CrIBoLoadImageFromFile(max_pixels=1200)(
        dict(img_path=str(tmp_path / 'small.png')))
    assert out['img'].shape == (30, 40, 3)
    assert CrIBoLoadImageFromFile(max_pixels=None)(
        dict(img_path=str(tmp_path / 'small.png')))['img'].shape == (30, 40, 3)
    for bad in (0, -5, 1.5e6, True, '1000'):
        with pytest.raises(ValueError,
                           match=r'CrIBoLoadImageFromFile: max_pixels must '
                           r'be a positive int or None, got'):
            CrIBoLoadImageFromFile(max_pixels=bad)
    from cribo_mm.datasets.transforms.loading import CrIBoCheckImageSize
    with pytest.raises(ValueError, match=r'CrIBoCheckImageSize: max_pixels '
                       r'must be a positive int, got None'):
        CrIBoCheckImageSize(max_pixels=None)


def test_pixel_limit_as_a_dataset_argument(tmp_path, mmpretrain_scope):
    _img(tmp_path / 'a.png', size=(30, 40))
    pipeline = [dict(type='CrIBoLoadImageFromFile')]
    ds = CrIBoImageFolder(
        data_root=str(tmp_path), pipeline=pipeline, max_pixels=1000)
    with pytest.raises(ImageTooLargeError, match='a.png'):
        ds[0]
    ds = CrIBoImageFolder(
        data_root=str(tmp_path), pipeline=pipeline, max_pixels=1200)
    assert ds[0]['img'].shape == (30, 40, 3)
    with pytest.raises(ValueError, match='needs a CrIBoLoadImageFromFile'):
        CrIBoImageFolder(data_root=str(tmp_path), max_pixels=1000)


def test_pixel_limit_for_formats_pillow_cannot_parse(monkeypatch):
    from cribo_mm.datasets.transforms import loading
    ok, buf = __import__('cv2').imencode('.png', np.zeros((20, 30, 3),
                                                          np.uint8))
    # pretend Pillow does not know the format: checked after decoding
    monkeypatch.setattr(loading, 'image_size_from_header', lambda b: None)
    with pytest.raises(ImageTooLargeError, match='30 x 20'):
        decode_image(buf.tobytes(), 'x.png', max_pixels=100)


def test_too_large_image_is_skippable(tmp_path):
    path = tmp_path / 'bomb.png'
    path.write_bytes(_png_bomb(10000, 9000))
    t = CrIBoLoadImageFromFile(skip_unreadable=True)
    assert t(dict(img_path=str(path))) is None
    with pytest.raises(UnreadableImageError, match='exceeds the limit') as e:
        CrIBoLoadImageFromFile()(dict(img_path=str(path)))
    # crosses process boundaries (data-loader workers) intact
    import pickle
    again = pickle.loads(pickle.dumps(e.value))
    assert isinstance(again, ImageTooLargeError)
    assert str(again) == str(e.value) and again.width == 10000


def _runner(work_dir, epoch):
    records = []
    logger = SimpleNamespace(warning=records.append)
    return SimpleNamespace(work_dir=str(work_dir), epoch=epoch,
                           logger=logger), records


def test_skips_counted_once_across_workers_and_epochs(tmp_path,
                                                      mmpretrain_scope):
    from torch.utils.data import DataLoader

    from cribo_mm.engine.hooks import CrIBoSkippedImagesHook
    data = tmp_path / 'data'
    for i in range(6):
        _img(data / f'good_{i}.png', seed=i)
    bad = ['bad_0.png', 'bad_1.jpg', 'bad_2.png']
    for name in bad:
        (data / name).write_bytes(b'not an image')
    ds = CrIBoImageFolder(
        data_root=str(data),
        pipeline=[dict(type='CrIBoLoadImageFromFile', skip_unreadable=True)],
        max_refetch=1000)
    hook = CrIBoSkippedImagesHook()
    runner, warnings = _runner(tmp_path, 1)
    hook.before_run(runner)
    try:
        for epoch in (1, 2):
            loader = DataLoader(ds, batch_size=3, num_workers=2,
                                collate_fn=lambda b: [d['img_path']
                                                      for d in b])
            seen = [p for batch in loader for p in batch]
            # every item came back as a good image (bad ones redrawn)
            assert len(seen) == len(ds)
            assert all('good_' in p for p in seen)
            runner.epoch = epoch
            hook.after_train_epoch(runner)
    finally:
        hook.after_run(runner)
    # one summary, in the first epoch; the second added nothing new
    assert len(warnings) == 1
    assert '3 distinct unreadable image(s)' in warnings[0]
    assert '3 new this epoch' in warnings[0]
    listing = (tmp_path / 'skipped_images.txt').read_text().splitlines()
    assert sorted(line.split('\t')[0].rsplit('/', 1)[-1]
                  for line in listing) == sorted(bad)
    assert all('not a readable image' in line for line in listing)
    assert 'CRIBO_SKIP_RECORD_DIR' not in os.environ


def test_skip_record_merges_processes(tmp_path, monkeypatch):
    from cribo_mm.datasets import skipped_files
    monkeypatch.setenv(skipped_files.SKIP_RECORD_ENV, str(tmp_path))
    monkeypatch.setattr(skipped_files, '_SKIPPED', {})
    assert skipped_files.record_skipped('/a.png', 'why')
    assert not skipped_files.record_skipped('/a.png', 'why')
    # another process's record with an overlapping file
    (tmp_path / 'skipped-other-1.jsonl').write_text(
        '{"path": "/a.png", "reason": "why"}\n'
        '{"path": "/b.png", "reason": "because"}\n{"path": "/c.p')
    assert skipped_files.read_skipped(str(tmp_path)) == {
        '/a.png': 'why', '/b.png': 'because'
    }


# ----------------------------------------------------------------------------
# a dataset smaller than one batch


def test_dataset_smaller_than_a_batch_is_a_clear_error(tmp_path,
                                                       mmpretrain_scope):
    from mmengine.runner import Runner

    from cribo_mm.utils.dataloader_check import EmptyDataLoaderError
    for i in range(3):
        _img(tmp_path / f'{i}.png', seed=i)
    cfg = dict(
        dataset=CrIBoImageFolder(data_root=str(tmp_path)),
        batch_size=8,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        drop_last=True)
    with pytest.raises(EmptyDataLoaderError) as info:
        Runner.build_dataloader(dict(cfg))
    msg = str(info.value)
    assert 'CrIBoImageFolder has 3 samples' in msg
    assert 'batch of 8' in msg and 'drop_last=True' in msg
    assert 'batch_size=3' in msg
    # without drop_last the last, partial batch is kept
    loader = Runner.build_dataloader(dict(cfg, drop_last=False))
    assert len(loader) == 1


# ----------------------------------------------------------------------------
# --resume


def _train_tool():
    return import_tool('tools/train.py', 'cribo_train_tool')


def _merge(tool, work_dir, *resume):
    from mmengine.config import Config
    args = tool.parse_args(
        [str(DEMO_CONFIG), '--work-dir', str(work_dir), '--resume', *resume])
    return tool.merge_args(Config.fromfile(str(DEMO_CONFIG)), args)


def test_resume_with_nothing_to_resume_warns(tmp_path, monkeypatch):
    from cribo_mm.utils import resume
    messages = []
    monkeypatch.setattr(resume, 'print_log',
                        lambda msg, **kw: messages.append((msg, kw)))
    cfg = _merge(_train_tool(), tmp_path / 'fresh')
    assert cfg.resume is False and cfg.load_from is None
    assert len(messages) == 1
    msg, kw = messages[0]
    assert kw['level'] == logging.WARNING
    assert 'training starts from scratch' in msg and 'fresh' in msg


def test_resume_from_broken_last_checkpoint_names_the_intact_one(tmp_path):
    from cribo_mm.utils.resume import (BrokenCheckpointError,
                                       checkpoint_is_intact)
    tool = _train_tool()
    good = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=dict(w=torch.zeros(1000))), good)
    assert checkpoint_is_intact(str(good)) == (True, '')
    broken = tmp_path / 'epoch_2.pth'
    broken.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    os.utime(good, (1, 1))  # the broken file is the newest
    (tmp_path / 'last_checkpoint').write_text(str(broken))
    with pytest.raises(BrokenCheckpointError) as info:
        _merge(tool, tmp_path)
    msg = str(info.value)
    assert str(broken) in msg and 'truncated' in msg
    assert f'--resume {good}' in msg
    # a missing file
    broken.unlink()
    with pytest.raises(BrokenCheckpointError, match='does not exist'):
        _merge(tool, tmp_path)
    # an explicit path that is truncated
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(BrokenCheckpointError, match='is empty'):
        _merge(tool, tmp_path, str(empty))
    # an intact target is resumed from
    (tmp_path / 'last_checkpoint').write_text(str(good))
    cfg = _merge(tool, tmp_path)
    assert cfg.resume is True and cfg.load_from == str(good)
    # a relative path written from another working directory
    (tmp_path / 'last_checkpoint').write_text('elsewhere/epoch_1.pth')
    assert _merge(tool, tmp_path).load_from == str(good)


def test_no_intact_checkpoint_says_so(tmp_path):
    from cribo_mm.utils.resume import BrokenCheckpointError
    (tmp_path / 'epoch_1.pth').write_bytes(os.urandom(64))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    with pytest.raises(BrokenCheckpointError,
                       match='no intact checkpoint was found'):
        _merge(_train_tool(), tmp_path)


def test_training_summarises_skipped_images_once_per_epoch(tmp_path):
    """A real Runner with two loader workers: the hook is added by default,
    counts distinct files and logs one summary in the epoch they appear."""
    import argparse

    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner

    from tests.engine.tiny_config import TINY_OPTIONS
    data = tmp_path / 'data'
    for i in range(8):
        _img(data / f'good_{i}.png', size=(64, 80), seed=i)
    bad = ['bad_0.png', 'bad_1.png', 'bad_2.jpg']
    for name in bad:
        (data / name).write_bytes(b'\x89PNG broken')
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    options = parser.parse_args(['--o'] + [
        o for o in TINY_OPTIONS
        if not o.startswith(('train_dataloader.dataset.',
                             'train_dataloader.num_workers',
                             'train_dataloader.persistent_workers'))
    ]).o
    cfg = Config.fromfile(str(DEMO_CONFIG))
    cfg.merge_from_dict(options)
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline[0].type == 'CrIBoLoadImageFromFile'
    pipeline[0].skip_unreadable = True
    cfg.train_dataloader.dataset = dict(
        type='CrIBoImageFolder', data_root=str(data), pipeline=pipeline)
    cfg.train_dataloader.num_workers = 2
    cfg.train_dataloader.persistent_workers = False
    cfg.model.memory_bank.num_images = 8
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    logged = []
    runner.logger.addFilter(lambda record: logged.append(
        record.getMessage()) or True)
    runner.train()
    summaries = [m for m in logged if 'distinct unreadable image' in m]
    assert len(summaries) == 1, summaries
    assert 'Epoch 1: 3 distinct unreadable image(s) skipped so far ' \
        '(3 new this epoch)' in summaries[0]
    listing = (tmp_path / 'work' / 'skipped_images.txt').read_text()
    assert sorted(line.split('\t')[0].rsplit('/', 1)[-1]
                  for line in listing.splitlines()) == sorted(bad)
