# Copyright (c) cribo-mm contributors. All rights reserved.
"""Hostile or damaged ORL stage-2 files: paths leaving the image folder,
malformed JSON."""
import json
import os

import cv2
import numpy as np
import pytest

from cribo_mm.datasets.orl import (ORLAnnotationError, ORLPairDataset,
                                   load_orl_json, make_images_part, read_json,
                                   resolve_image_paths)
from cribo_mm.orl_mining import build_correspondence
from tests.orl.test_orl_tools import tools  # noqa: F401  (fixture)


@pytest.fixture
def folders(tmp_path):
    root = tmp_path / 'images'
    (root / 'sub').mkdir(parents=True)
    outside = tmp_path / 'secret'
    outside.mkdir()
    for path in (root / 'a.png', root / 'sub' / 'b.png', outside / 'c.png'):
        cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))
    return root, outside


@pytest.mark.parametrize('name', [
    '../secret/c.png', 'sub/../../secret/c.png', '{outside}/c.png',
    'link/c.png', 'link_file.png', '..', '/etc/passwd'
])
def test_paths_outside_the_image_folder_are_refused(folders, name):
    root, outside = folders
    os.symlink(outside, root / 'link')
    os.symlink(outside / 'c.png', root / 'link_file.png')
    name = name.format(outside=outside)
    with pytest.raises(ORLAnnotationError) as info:
        resolve_image_paths(['a.png', name], str(root), 'knn.json')
    msg = str(info.value)
    assert "'knn.json'" in msg and 'images.file_name[1]' in msg
    assert 'outside the image folder' in msg


def test_paths_inside_the_image_folder_are_kept(folders):
    root, _ = folders
    names = ['a.png', 'sub/b.png', './sub/../a.png', f'{root}/sub/b.png']
    assert resolve_image_paths(names, str(root)) == [
        os.path.join(str(root), n) for n in names
    ]
    # a root given through a link is resolved too
    os.symlink(root, root.parent / 'root_link')
    assert len(resolve_image_paths(names, str(root.parent / 'root_link'))) \
        == 4
    # no image folder: the names are used as listed (full paths)
    assert resolve_image_paths(['/x/y.png'], '') == ['/x/y.png']


def test_dataset_refuses_escaping_names(folders):
    root, outside = folders
    images = make_images_part(['a.png', '../secret/c.png'])
    data = build_correspondence(
        images, [[[0, 0, 4, 4]], [[0, 0, 4, 4]]], [[1], [0]],
        lambda row, boxes: np.ones((len(boxes), 2)),
        info=dict(knn_image_num=1, bbox_min_size=1))
    ann = root.parent / 'corr.json'
    ann.write_text(json.dumps(data))
    with pytest.raises(ORLAnnotationError, match=r"file_name\[1\]"):
        ORLPairDataset(ann_file=str(ann), data_prefix=str(root))


@pytest.mark.parametrize('text,where', [
    ('{"images": ', 'line 1, column 12'),
    ('{\n  "images": {"file_name": ["a.png",]}\n}', 'line 2, column 36'),
    ('', 'line 1, column 1'),
])
def test_malformed_json_names_file_and_position(tmp_path, text, where):
    path = tmp_path / 'broken.json'
    path.write_text(text)
    for read in (read_json, lambda p: load_orl_json(p, 'knn')):
        with pytest.raises(ORLAnnotationError) as info:
            read(str(path))
        assert str(path) in str(info.value)
        assert where in str(info.value)
    path.write_bytes(b'\xff\xfe\x00binary')
    with pytest.raises(ORLAnnotationError, match='not a UTF-8'):
        read_json(str(path))


def test_selective_search_tool_refuses_escapes_and_bad_json(
        tools, folders, tmp_path):  # noqa: F811
    _, selective_search, _ = tools
    root, _ = folders
    knn = dict(
        images=make_images_part(['a.png', '../secret/c.png']),
        pseudo_annotations=dict(image_id=[0, 1], knn_image_id=[[1], [0]]))
    path = tmp_path / 'knn.json'
    path.write_text(json.dumps(knn))
    argv = ['--images', str(path), '--out', str(tmp_path / 'p.json'),
            '--workers', '0', '--img-root', str(root),
            '--work-dir', str(tmp_path / 'work')]
    with pytest.raises(ORLAnnotationError, match='outside the image folder'):
        selective_search.main(argv)
    assert not (tmp_path / 'p.json').exists()
    path.write_text(json.dumps(knn)[:-5])
    with pytest.raises(ORLAnnotationError, match='knn.json.*line 1'):
        selective_search.main(argv)


def test_knn_names_outside_the_root_are_refused_when_written(folders):
    from cribo_mm.orl_mining import relative_names
    root, outside = folders
    assert relative_names([str(root / 'sub' / 'b.png')], str(root)) == [
        os.path.join('sub', 'b.png')
    ]
    with pytest.raises(ValueError, match='lie outside it'):
        relative_names([str(root / 'a.png'), str(outside / 'c.png')],
                       str(root))
    assert relative_names([str(outside / 'c.png')], '') == [
        str(outside / 'c.png')
    ]
