# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage-2 files, the RoI-pair data set and its transforms."""
import copy
import json

import cv2
import numpy as np
import pytest
from mmengine.config import Config

import cribo_mm  # noqa: F401
from cribo_mm.datasets.orl import (ORLAnnotationError, ORLPairDataset,
                                   load_orl_json, make_images_part,
                                   validate_orl_json)
from cribo_mm.orl_mining import build_correspondence
from cribo_mm.registry import DATASETS, TRANSFORMS
from tests.engine.tiny_config import ROOT

NUM = 4


def _images(tmp_path):
    rng = np.random.default_rng(0)
    names = []
    for i in range(NUM):
        name = f'img{i}.png'
        img = rng.integers(0, 255, (160 + 8 * i, 200, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / name), img)
        names.append(name)
    return make_images_part(names, ids=[10 + i for i in range(NUM)])


def _correspondence(tmp_path):
    images = _images(tmp_path)
    proposals = [[[0, 0, 100, 100], [90, 50, 100, 100], [5, 5, 20, 20]]
                 for _ in range(NUM)]
    knn = [[(i + 1) % NUM, (i + 2) % NUM] for i in range(NUM)]

    calls = []

    def embed(row, boxes):
        calls.append(row)
        # box 1 of every image matches box 1 of every other image best
        return np.array([[1., 0, 0], [0, 2., 0]])[:len(boxes)]

    data = build_correspondence(
        images, proposals, knn, embed, info=dict(knn_image_num=2))
    assert sorted(calls) == list(range(NUM))  # each image embedded once
    path = tmp_path / 'corr.json'
    path.write_text(json.dumps(data))
    return path, data


def test_build_correspondence_layout(tmp_path):
    path, data = _correspondence(tmp_path)
    ann = data['pseudo_annotations']
    assert ann['image_id'] == [10, 11, 12, 13]
    # the 20 px proposal is filtered out, the other two kept
    assert ann['bbox'][0] == [[0., 0., 100., 100.], [90., 50., 100., 100.]]
    assert len(ann['knn_bbox_pair'][0]) == 2
    # 2 boxes: max(1, floor(0.2)) = 1 pair per neighbour, the best match
    assert ann['knn_bbox_pair'][0][0] == [[
        90., 50., 100., 100., 90., 50., 100., 100.
    ]]
    assert data['info']['bbox_min_size'] == 96
    assert load_orl_json(str(path), 'correspondence') == data


@pytest.mark.parametrize('mutate,key', [
    (lambda d: d.pop('images'), 'images'),
    (lambda d: d['images']['id'].pop(), 'images.id'),
    (lambda d: d['pseudo_annotations'].pop('knn_bbox_pair'),
     'pseudo_annotations.knn_bbox_pair'),
    (lambda d: d['pseudo_annotations']['bbox'][2][0].pop(),
     'pseudo_annotations.bbox[2][0]'),
    (lambda d: d['pseudo_annotations']['knn_image_id'][1].append(99),
     'pseudo_annotations.knn_image_id[1]'),
    (lambda d: d['pseudo_annotations']['knn_bbox_pair'][3].pop(),
     'pseudo_annotations.knn_bbox_pair[3]'),
    (lambda d: d['info'].pop('bbox_max_iou'), 'info.bbox_max_iou'),
])
def test_validation_names_file_and_key(tmp_path, mutate, key):
    _, data = _correspondence(tmp_path)
    bad = copy.deepcopy(data)
    mutate(bad)
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(bad))
    with pytest.raises(ORLAnnotationError) as e:
        load_orl_json(str(path), 'correspondence')
    assert e.value.key == key
    assert 'bad.json' in str(e.value) and key in str(e.value)


def test_validation_kinds_and_non_json(tmp_path):
    images = make_images_part(['a.jpg', 'b.jpg'])
    knn = dict(
        images=images,
        pseudo_annotations=dict(image_id=[0, 1], knn_image_id=[[1], [0]]))
    assert validate_orl_json(knn, 'knn') is knn
    with pytest.raises(ORLAnnotationError, match='pseudo_annotations.bbox'):
        validate_orl_json(knn, 'proposals', 'knn.json')
    path = tmp_path / 'broken.json'
    path.write_text('{"images": ')
    with pytest.raises(ORLAnnotationError, match='not valid JSON'):
        load_orl_json(str(path), 'knn')


def _pipeline(roi_size=32, img_size=48):
    cfg = Config.fromfile(ROOT / 'configs/orl/orl_resnet18-tiny_demo.py')
    pipeline = copy.deepcopy(cfg.train_dataloader.dataset.pipeline)
    branch = pipeline[3]
    assert branch.type == 'ORLMultiBranch' and branch.roi_size == 96
    branch.roi_size = roi_size
    for p in branch.img_pipelines:
        assert p[0].type == 'RandomResizedCrop' and p[0].scale == 224
        p[0].scale = img_size
    # RoI pipelines: no crop, the asymmetric blur / solarize of the views
    assert [t.type for t in branch.roi_pipelines[0]
            ] == [t.type for t in branch.img_pipelines[0][1:]]
    assert branch.roi_pipelines[0][-1].prob == 0.
    assert branch.roi_pipelines[1][-1].prob == 0.2
    return pipeline


def test_dataset_and_pipeline_give_six_views(tmp_path):
    path, data = _correspondence(tmp_path)
    ds = DATASETS.build(
        dict(
            type='ORLPairDataset',
            ann_file=str(path),
            data_prefix=str(tmp_path),
            pipeline=_pipeline()))
    assert isinstance(ds, ORLPairDataset) and len(ds) == NUM
    info = ds.get_data_info(0)
    assert info['knn_img_paths'] == [
        str(tmp_path / 'img1.png'),
        str(tmp_path / 'img2.png')
    ]
    out = ds[0]
    shapes = [tuple(v.shape) for v in out['inputs']]
    assert shapes == [(3, 48, 48)] * 2 + [(3, 32, 32)] * 4


def test_dataset_missing_image_is_reported(tmp_path):
    path, _ = _correspondence(tmp_path)
    (tmp_path / 'img2.png').unlink()
    with pytest.raises(FileNotFoundError, match='img2.png'):
        ORLPairDataset(ann_file=str(path), data_prefix=str(tmp_path))


def test_roi_transforms(tmp_path):
    np.random.seed(0)
    img = np.zeros((120, 160, 3), np.uint8)
    results = dict(
        img=img,
        bbox=[[10, 10, 60, 50]],
        roi_pairs=np.array([[0, 0, 50, 50, 5, 5, 40, 40.]]))
    jitter = TRANSFORMS.build(dict(type='ORLRoIJitter'))
    results = jitter(results)
    b1, b2 = results['intra_bbox']
    assert b1.tolist() == [10, 10, 60, 50]
    assert b2[0] >= 0 and b2[1] >= 0 and b2[0] + b2[2] <= 160
    assert 'ORLRoIJitter(' in repr(jitter)
    results = TRANSFORMS.build(dict(type='ORLSelectRoIPair'))(results)
    assert results['inter_bbox'].tolist() == [[0, 0, 50, 50], [5, 5, 40, 40]]
