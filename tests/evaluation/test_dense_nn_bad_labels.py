# Copyright (c) cribo-mm contributors. All rights reserved.
"""Dense NN evaluation with bad label maps: wrong size, colour-coded PNGs,
values outside the classes."""
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip('mmcv.ops')  # MMSegmentation needs mmcv's compiled ops

from cribo_mm.evaluation.dense_nn import (  # noqa: E402
    DenseNNSettings, RetrievalSegDataset, build_memory, evaluate_retrieval)
from cribo_mm.evaluation.dense_nn.labels import (  # noqa: E402
    LabelMapError, StrayLabelCounter, check_label_map, stray_labels)
from tests.evaluation.test_dense_nn_pipeline import (  # noqa: E402
    ColourPatches, _datasets)


def _label_file(stripes_data, split='train', index=0):
    return osp.join(stripes_data['root'], 'ann', split, f'{index:03d}.png')


def test_check_label_map_and_stray_labels():
    label = torch.zeros(4, 6, dtype=torch.long)
    check_label_map(label, (4, 6), 'a.png')
    with pytest.raises(LabelMapError, match=r"'a.png' is 6x4 .* image is 8x4"):
        check_label_map(label, (4, 8), 'a.png')
    with pytest.raises(LabelMapError, match='single-channel PNG'):
        check_label_map(torch.zeros(4, 6, 3), (4, 6), 'rgb.png')
    label[0, :3] = torch.tensor([3, 7, 255])
    label[1, 0] = -1
    assert stray_labels(label, 3, 255) == {-1: 1, 3: 1, 7: 1}
    assert stray_labels(torch.tensor([0, 2, 255]), 3, 255) == {}
    counter = StrayLabelCounter(3, 255)
    assert counter.message() is None
    counter.update({}, 'clean.png')
    counter.update({7: 2}, 'x.png')
    counter.update({7: 3, 9: 1}, 'y.png')
    msg = counter.message()
    assert msg.startswith('2 label map(s)')
    assert '7 (5 px, e.g. in x.png)' in msg
    assert '9 (1 px, e.g. in y.png)' in msg
    assert '0..2' in msg and 'ignore index 255' in msg


def test_label_of_another_size_is_an_error(stripes_data):
    train, _ = _datasets(stripes_data['config'])
    path = _label_file(stripes_data)
    label = np.asarray(Image.open(path))
    Image.fromarray(label[::2, ::2]).save(path)  # 32x32 for a 64x64 image
    ds = RetrievalSegDataset(train, [0], img_size=64, memory=True)
    with pytest.raises(LabelMapError) as info:
        ds[0]
    assert path in str(info.value)
    assert '32x32' in str(info.value) and '64x64' in str(info.value)
    # the option resizes it (nearest) to the image instead
    item = RetrievalSegDataset(
        train, [0], img_size=64, memory=False, resize_labels=True)[0]
    assert item['label'].shape == (64, 64)
    torch.testing.assert_close(item['label'][::2, ::2],
                               torch.from_numpy(label[::2, ::2].copy()).long())
    # the evaluation stops too, naming the file
    settings = DenseNNSettings(img_size=64, aug_epochs=1, augment=False)
    with pytest.raises(LabelMapError, match='000.png'):
        build_memory(ColourPatches(), train, range(6), 3, 255, settings,
                     progress=False)
    settings.resize_labels = True
    memory = build_memory(ColourPatches(), train, range(6), 3, 255, settings,
                          progress=False)
    assert len(memory) == 6 * 16


def test_colour_coded_label_png_is_an_error(stripes_data):
    path = _label_file(stripes_data, 'val', 1)
    label = np.asarray(Image.open(path))
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    Image.fromarray(palette[label]).save(path)  # RGB colours, not indices
    _, val = _datasets(stripes_data['config'])
    ds = RetrievalSegDataset(val, [0, 1], img_size=64)
    ds[0]  # untouched
    with pytest.raises(LabelMapError) as info:
        ds[1]
    assert path in str(info.value)
    assert 'single-channel PNG of class indices' in str(info.value)


def test_stray_label_values_are_counted_and_warned(stripes_data):
    train, val = _datasets(stripes_data['config'])
    for split, index, value in (('train', 2, 7), ('val', 0, 9)):
        path = _label_file(stripes_data, split, index)
        label = np.array(Image.open(path))
        label[:5, :6] = value  # 30 pixels of a class that does not exist
        Image.fromarray(label).save(path)
    ds = RetrievalSegDataset(train, [2], img_size=64, num_classes=3)
    assert ds[0]['stray_labels'] == {7: 30}
    settings = DenseNNSettings(img_size=64, aug_epochs=2, augment=False)
    backbone = ColourPatches()
    with pytest.warns(UserWarning) as record:
        memory = build_memory(backbone, train, range(6), 3, 255, settings,
                              progress=False)
    messages = [str(r.message) for r in record]
    memory_msgs = [m for m in messages if m.startswith('Memory')]
    # counted once, not once per augmentation epoch
    assert len(memory_msgs) == 1
    assert '7 (30 px' in memory_msgs[0]
    assert _label_file(stripes_data, 'train', 2) in memory_msgs[0]
    with pytest.warns(UserWarning, match=r'Validation labels: .*9 \(30 px'):
        evaluate_retrieval(backbone, val, range(3), memory, 3, 255, settings,
                           progress=False)


def test_clean_labels_do_not_warn(stripes_data, recwarn):
    train, val = _datasets(stripes_data['config'])
    settings = DenseNNSettings(img_size=64, aug_epochs=1, augment=False)
    memory = build_memory(ColourPatches(), train, range(6), 3, 255, settings,
                          progress=False)
    evaluate_retrieval(ColourPatches(), val, range(3), memory, 3, 255,
                       settings, progress=False)
    assert not [w for w in recwarn if 'label' in str(w.message)]


def test_decompression_bomb_refused_before_mmcv_decodes_it(stripes_data):
    """mmcv's LoadImageFromFile decodes any size; the header is checked
    first."""
    import struct
    import zlib

    from cribo_mm.datasets.transforms.loading import ImageTooLargeError

    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))

    # a PNG header announcing 20000 x 20000 pixels, with garbage pixel data
    ihdr = struct.pack('>IIBBBBB', 20000, 20000, 8, 2, 0, 0, 0)
    path = osp.join(stripes_data['root'], 'img', 'val', '001.png')
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
                chunk(b'IDAT', b'garbage') + chunk(b'IEND', b''))
    _, val = _datasets(stripes_data['config'])
    ds = RetrievalSegDataset(val, [0, 1], img_size=64)
    assert ds[0]['img'].shape == (3, 64, 64)
    with pytest.raises(ImageTooLargeError, match=r'001.png.*400000000 pixels'):
        ds[1]
