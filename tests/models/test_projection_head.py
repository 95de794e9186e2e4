# Copyright (c) cribo-mm contributors. All rights reserved.
import copy

import pytest
import torch

from cribo_mm.models.necks.projection_head import CrIBoProjectionHead
from tests.fixtures import load_fixture


def _legacy_to_parametrized(state):
    out = {}
    for key, value in state.items():
        key = key.replace('weight_g', 'parametrizations.weight.original0')
        key = key.replace('weight_v', 'parametrizations.weight.original1')
        out[key] = value
    return out


def test_head_matches_reference_outputs():
    fx = load_fixture('head_and_backbone.pt')
    head_state = fx['head_state_dict']
    in_dim = head_state['mlp.0.weight'].shape[1]
    head = CrIBoProjectionHead(
        in_channels=in_dim,
        out_channels=head_state['last_layer.weight_v'].shape[0],
        out_channels_objects=head_state['last_layer_c.weight_v'].shape[0],
        hidden_channels=head_state['mlp.0.weight'].shape[0],
        bottleneck_channels=head_state['mlp.4.weight'].shape[0])
    head.load_state_dict(_legacy_to_parametrized(head_state), strict=True)
    out = fx['outputs']
    cls = out['cls']
    tokens = out['tokens'][:, 1:].reshape(-1, in_dim)
    torch.testing.assert_close(
        head(cls), out['head_cls'], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        head.forward_objects(tokens), out['head_c_patch_tokens'],
        atol=1e-5, rtol=0)


def test_head_shapes_deepcopy_and_norm_last_layer():
    head = CrIBoProjectionHead(
        8, out_channels=5, out_channels_objects=3, hidden_channels=16,
        bottleneck_channels=4, norm_last_layer=True)
    x = torch.randn(6, 8)
    assert head(x).shape == (6, 5)
    assert head.forward_objects(x).shape == (6, 3)
    # The EMA teacher deep-copies the head.
    clone = copy.deepcopy(head)
    torch.testing.assert_close(clone(x), head(x))
    gains = [head.last_layer.parametrizations.weight.original0,
             head.last_layer_c.parametrizations.weight.original0]
    for gain in gains:
        assert not gain.requires_grad
        assert torch.all(gain == 1)
    # The effective weight rows have norm g = 1.
    assert torch.allclose(head.last_layer.weight.norm(dim=1),
                          torch.ones(5), atol=1e-6)
    assert len(list(head.last_layer_parameters())) == 4


def test_head_rejects_zero_layers():
    with pytest.raises(ValueError, match='num_layers'):
        CrIBoProjectionHead(8, num_layers=0)
