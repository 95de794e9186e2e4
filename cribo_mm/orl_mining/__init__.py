# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL's offline mining (stage 2), between the two training stages.

With the network of stage 1 (image-level BYOL) and no gradients, it finds
what stage 3 learns from, and writes it as the files of
:mod:`cribo_mm.datasets.orl.annotations`:

* 2a, :mod:`.knn`: the nearest images of every image, from the
  embeddings of :func:`embed_images` (:mod:`.embedding`);
* 2b, :mod:`.proposals`: selective-search region proposals;
* 2c, :mod:`.correspondence`: filtered boxes and, per neighbour image, the
  most similar RoI pairs, from the box embeddings of :class:`RoIEmbedder`.

The tools in ``tools/orl/`` run these steps sharded and resumable. Nothing
here is registered: ``import cribo_mm`` does not import this package.
"""
from .correspondence import (assemble_correspondence, build_correspondence,
                             filter_all_proposals, filter_proposals,
                             image_pairs, select_top_pairs)
from .embedding import (RoIEmbedder, build_stage1_network, embed_images,
                        image_list, relative_names)
from .knn import knn_from_embeddings
from .proposals import require_selective_search, selective_search

__all__ = [
    'RoIEmbedder', 'assemble_correspondence', 'build_correspondence',
    'build_stage1_network', 'embed_images', 'filter_all_proposals',
    'filter_proposals', 'image_list', 'image_pairs', 'knn_from_embeddings',
    'relative_names', 'require_selective_search', 'select_top_pairs',
    'selective_search'
]
