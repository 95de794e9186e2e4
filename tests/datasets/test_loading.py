# Copyright (c) cribo-mm contributors. All rights reserved.
"""Image loading: unusual modes are converted, bad files fail clearly."""
import logging

import numpy as np
import pytest
from PIL import Image

from cribo_mm.datasets.transforms import (CrIBoLoadImageFromFile,
                                          UnreadableImageError, decode_image)


def _rgb(h=20, w=30, seed=0):
    return np.random.RandomState(seed).randint(0, 255, (h, w, 3), np.uint8)


def _load(path, **kw):
    return CrIBoLoadImageFromFile(**kw)(dict(img_path=str(path)))


def test_rgb_png_is_bgr(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    res = _load(tmp_path / 'a.png')
    assert np.array_equal(res['img'], rgb[..., ::-1])
    assert res['img_shape'] == res['ori_shape'] == (20, 30)
    assert res['img'].flags.c_contiguous


@pytest.mark.parametrize('mode,suffix', [('L', 'png'), ('L', 'jpg'),
                                         ('RGBA', 'png'), ('LA', 'png'),
                                         ('P', 'png'), ('1', 'png'),
                                         ('CMYK', 'jpg'), ('CMYK', 'tif'),
                                         ('RGB', 'webp'), ('RGB', 'bmp'),
                                         ('P', 'gif')])
def test_modes_are_converted(tmp_path, mode, suffix):
    rgb = _rgb()
    pil = Image.fromarray(rgb).convert(mode)
    path = tmp_path / f'x.{suffix}'
    pil.save(path)
    res = _load(path)
    img = res['img']
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    expected = np.asarray(Image.open(path).convert('RGB'))[..., ::-1]
    tol = 12 if suffix == 'jpg' else 1
    assert np.abs(img.astype(int) - expected.astype(int)).mean() < tol


def test_16bit_png_is_rescaled(tmp_path):
    import cv2
    ramp = (np.arange(20 * 30, dtype=np.uint32).reshape(20, 30) *
            109).astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'g16.png'), ramp)  # 16-bit grayscale
    img = _load(tmp_path / 'g16.png')['img']
    assert img.dtype == np.uint8 and img.shape == (20, 30, 3)
    expected = np.rint(ramp / 257.).astype(np.uint8)
    assert np.abs(img[..., 0].astype(int) - expected).max() <= 1
    color16 = np.stack([ramp, ramp // 2, 65535 - ramp], -1)
    cv2.imwrite(str(tmp_path / 'c16.png'), color16)
    img = _load(tmp_path / 'c16.png')['img']
    assert np.abs(img.astype(int) -
                  np.rint(color16 / 257.).astype(int)).max() <= 1
    # Pillow path (a 16-bit TIFF that Pillow reads as I;16)
    Image.fromarray(ramp).save(tmp_path / 'g16.tif')
    img = decode_image((tmp_path / 'g16.tif').read_bytes())
    assert np.abs(img[..., 0].astype(int) - expected).max() <= 1


@pytest.mark.parametrize('content,reason', [
    (b'', 'empty'), (b'not an image at all', 'not a readable image'),
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 40, 'not a readable image')
])
def test_corrupt_file_names_the_file(tmp_path, content, reason):
    path = tmp_path / 'broken.jpg'
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=reason) as info:
        _load(path)
    assert 'broken.jpg' in str(info.value)
    assert info.value.filename == str(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(UnreadableImageError, match='no such file') as info:
        _load(tmp_path / 'nope.png')
    assert 'nope.png' in str(info.value)


def test_skip_flag_returns_none_and_counts(tmp_path, monkeypatch):
    import pickle

    from cribo_mm.datasets import skipped_files
    from cribo_mm.datasets.transforms import loading
    messages = []
    monkeypatch.setattr(loading, 'print_log',
                        lambda msg, **kw: messages.append((msg, kw)))
    monkeypatch.setattr(skipped_files, '_SKIPPED', {})
    monkeypatch.delenv(skipped_files.SKIP_RECORD_ENV, raising=False)
    for name in ('bad.png', 'bad2.png', 'bad3.png'):
        (tmp_path / name).write_bytes(b'garbage')
    t = CrIBoLoadImageFromFile(skip_unreadable=True)
    for _ in range(3):  # the same file, met three times, counts once
        assert t(dict(img_path=str(tmp_path / 'bad.png'))) is None
    assert CrIBoLoadImageFromFile.num_skipped() == 1
    for name in ('bad2.png', 'bad3.png'):
        assert t(dict(img_path=str(tmp_path / name))) is None
    assert CrIBoLoadImageFromFile.num_skipped() == 3
    # logged at 1 and 2 distinct files (powers of two), as warnings naming
    # the file
    assert len(messages) == 2
    assert 'bad2.png' in messages[1][0] and '2 distinct' in messages[1][0]
    assert messages[0][1]['level'] == logging.WARNING
    assert 'skip_unreadable=True' in repr(t)
    err = UnreadableImageError('f.jpg', 'why')
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


def test_to_float32(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / 'a.png')
    assert _load(tmp_path / 'a.png', to_float32=True)['img'].dtype == \
        np.float32
