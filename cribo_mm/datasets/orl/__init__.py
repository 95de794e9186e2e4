# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL (object-level representation learning) data: stage-2 files, the
stage-3 RoI-pair data set and its transforms."""
from .boxes import (box_iou, crop_resize, filter_proposals, jitter_box,
                    select_top_pairs)
from .correspondence import (DEFAULT_INFO, ORLAnnotationError,
                             assemble_correspondence, build_correspondence,
                             filter_all_proposals, image_pairs,
                             knn_from_embeddings, load_orl_json,
                             make_images_part, read_json,
                             resolve_image_paths, validate_images_part,
                             validate_orl_json)
from .dataset import ORLPairDataset
from .proposals import require_selective_search, selective_search
from .stage2 import (RoIEmbedder, build_stage1_network, embed_images,
                     image_list, relative_names)
from .transforms import (ORLLoadImagePair, ORLMultiBranch, ORLRoIJitter,
                         ORLSelectRoIPair)

__all__ = [
    'DEFAULT_INFO', 'ORLAnnotationError', 'ORLLoadImagePair', 'ORLMultiBranch',
    'ORLPairDataset', 'ORLRoIJitter', 'ORLSelectRoIPair', 'RoIEmbedder',
    'assemble_correspondence', 'box_iou', 'build_correspondence',
    'build_stage1_network', 'crop_resize', 'embed_images',
    'filter_all_proposals', 'filter_proposals', 'image_pairs', 'image_list',
    'jitter_box', 'knn_from_embeddings', 'load_orl_json', 'make_images_part',
    'read_json', 'relative_names', 'require_selective_search',
    'resolve_image_paths', 'select_top_pairs',
    'selective_search', 'validate_images_part', 'validate_orl_json'
]
