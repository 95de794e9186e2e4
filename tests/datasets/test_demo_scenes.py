# Copyright (c) cribo-mm contributors. All rights reserved.
"""The demo scenes tell classes apart by shape and texture, not colour."""
import json

import numpy as np

from cribo_mm.datasets.demo_scenes import (CATEGORY_TEXTURES, DEMO_CLASSES,
                                           DEMO_VERSION, render_scene)


def _regions(num_images=40, size=(128, 128)):
    """Per (image, class) region: mean RGB and mean horizontal gradient."""
    colours = {c: [] for c in range(len(DEMO_CLASSES))}
    gradients = {c: [] for c in range(len(DEMO_CLASSES))}
    for k in range(num_images):
        img, mask = render_scene(np.random.default_rng([5, 0, k]), size)
        img = img.astype(np.float64)
        grad = np.abs(np.diff(img, axis=1)).sum(-1)
        # pixels whose right neighbour has the same class (no edges)
        same = mask[:, 1:] == mask[:, :-1]
        for c in np.unique(mask):
            inside = mask == c
            if inside.sum() < 60:
                continue
            colours[int(c)].append(img[inside].mean(0))
            gradients[int(c)].append(grad[same & (mask[:, 1:] == c)].mean())
    return ({c: np.array(v) for c, v in colours.items()},
            {c: np.array(v) for c, v in gradients.items()})


def test_colour_does_not_identify_the_class():
    assert DEMO_VERSION >= 2  # version 1 gave each class a colour family
    colours, _ = _regions()
    means = np.stack([colours[c].mean(0) for c in range(len(DEMO_CLASSES))])
    # colours vary widely inside every class
    for c in range(len(DEMO_CLASSES)):
        assert colours[c].std(0).mean() > 35, (DEMO_CLASSES[c],
                                               colours[c].std(0))
    # the nearest class mean of the region colour (means fitted on these
    # very regions) is close to chance, 1/6, on object regions; with
    # colour families per class (version 1) it is close to 1
    hits = total = 0
    for c in range(1, len(DEMO_CLASSES)):
        d = np.linalg.norm(colours[c][:, None] - means[None, 1:], axis=-1)
        hits += int((d.argmin(1) + 1 == c).sum())
        total += len(colours[c])
    assert total > 100
    assert hits / total < 0.35, hits / total


def test_objects_are_textured_and_the_background_is_not():
    assert set(CATEGORY_TEXTURES) == set(range(1, len(DEMO_CLASSES)))
    assert len(set(CATEGORY_TEXTURES.values())) == len(CATEGORY_TEXTURES)
    _, gradients = _regions()
    background = np.median(gradients[0])
    for c in range(1, len(DEMO_CLASSES)):
        # every textured class has far more local contrast than the
        # untextured background (smooth blotches, clutter blobs)
        assert np.median(gradients[c]) > 3 * background, (
            DEMO_CLASSES[c], np.median(gradients[c]), background)


def test_cache_folder_follows_the_generator(monkeypatch, tmp_path):
    """A generator that draws other scenes gets another cache folder, so a
    cache of an older generator is never reused."""
    from cribo_mm.datasets import demo_scenes
    before = demo_scenes.demo_scenes_root(0, 2, 1, (32, 32), tmp_path)
    fingerprint = demo_scenes.generator_fingerprint()
    assert fingerprint in before.name
    render = demo_scenes.render_scene

    def other_render(rng, size):
        img, mask = render(rng, size)
        return 255 - img, mask

    demo_scenes.generator_fingerprint.cache_clear()
    monkeypatch.setattr(demo_scenes, 'render_scene', other_render)
    try:
        after = demo_scenes.demo_scenes_root(0, 2, 1, (32, 32), tmp_path)
        assert after != before
        root = demo_scenes.ensure_demo_scenes(seed=0, num_train=2,
                                              num_val=1, image_size=(32, 32),
                                              cache_root=tmp_path)
        assert root == after
        meta = json.loads((root / 'meta.json').read_text())
        assert meta['generator'] == demo_scenes.generator_fingerprint()
    finally:
        demo_scenes.generator_fingerprint.cache_clear()
