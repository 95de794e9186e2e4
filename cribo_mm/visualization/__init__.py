# Copyright (c) cribo-mm contributors. All rights reserved.
"""Drawing helpers of the analysis tools (``tools/analysis/``).

* :mod:`.colors`, :mod:`.masks`, :mod:`.drawing`: pure NumPy functions
  (palettes, label maps, overlays, layout).
* :mod:`.annotate`: texts and boxes through mmengine's ``Visualizer``.
* :mod:`.figures`: the composed pictures (object clusters, neighbour pairs).
* :mod:`.view_geometry`: the two views, their boxes, flips and token centres
  on the original image (``tools/analysis/browse_dataset.py``).
* :mod:`.curves`: training curves from mmengine's scalar logs.
* :mod:`.inference`: load a CrIBo checkpoint, make seeded views and cluster
  them as in training.
* :mod:`.cli`: arguments, image selection and config loading shared by the
  drawing tools.
"""
from .annotate import (BoxItem, TextItem, annotate, display_available,
                       show_image)
from .cli import (add_image_selection_args, add_show_args, check_file,
                  load_config, sample_png_name, save_figures,
                  select_indices)
from .colors import (FAIL_COLOR, INVALID_COLOR, PASS_COLOR, VIEW_COLORS,
                     object_palette)
from .curves import (find_scalar_logs, load_training_records,
                     moving_average, read_scalar_log, render_training_curves,
                     training_series)
from .drawing import (add_frame, as_rgb_uint8, blank, highlight_mask,
                      hstack_panels, overlay_objects, pad_image,
                      resize_to_height, vstack_panels)
from .figures import (add_header, compose_neighbour_pair,
                      compose_object_clusters, compose_placeholder,
                      object_mask_in_original, render, shift_items, tile)
from .inference import (DatasetInfos, ImageObjects, TwoViewSample,
                        build_view_pipeline, cluster_images,
                        clustering_init_index, collect_image_infos,
                        load_cribo_model, prepare_sample, seed_everything)
from .io import load_png, save_png
from .masks import (hard_labels, hatch_mask, label_boundaries,
                    labels_to_grid, mask_anchor, resize_labels,
                    view_to_original)
from .view_geometry import (compose_view_geometry, draw_points,
                            view_token_centres)

__all__ = [
    'BoxItem', 'TextItem', 'annotate', 'display_available', 'show_image',
    'add_image_selection_args', 'add_show_args', 'check_file', 'load_config',
    'sample_png_name', 'save_figures', 'select_indices',
    'FAIL_COLOR', 'INVALID_COLOR', 'PASS_COLOR', 'VIEW_COLORS',
    'object_palette', 'find_scalar_logs', 'load_training_records',
    'moving_average', 'read_scalar_log', 'render_training_curves',
    'training_series', 'add_frame', 'as_rgb_uint8', 'blank',
    'highlight_mask', 'hstack_panels', 'overlay_objects', 'pad_image',
    'resize_to_height', 'vstack_panels', 'add_header',
    'compose_neighbour_pair', 'compose_object_clusters',
    'compose_placeholder', 'object_mask_in_original', 'render',
    'shift_items', 'tile', 'DatasetInfos', 'ImageObjects', 'TwoViewSample',
    'build_view_pipeline', 'cluster_images', 'clustering_init_index',
    'collect_image_infos', 'load_cribo_model', 'prepare_sample',
    'seed_everything', 'load_png', 'save_png', 'hard_labels', 'hatch_mask',
    'label_boundaries', 'labels_to_grid', 'mask_anchor', 'resize_labels',
    'view_to_original', 'compose_view_geometry', 'draw_points',
    'view_token_centres'
]
