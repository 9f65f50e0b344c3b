"""AS-MLP networks (ASMLP, asmlp_tiny / small / base): official names and parameter counts,
the whole network against a float64 NumPy reference composed from the official blocks, the
network contract (features, export, frozen stages), training at 224 and an odd size.

``data/asmlp_tiny_official_shapes.json`` is the ``state_dict()`` (names and shapes, in order)
of the official ``models/as_mlp.AS_MLP`` (svip-lab/AS-MLP) built with
``configs/as_tiny_patch4_shift5_224.yaml``, dumped once with PyTorch; the parameter counts
below come from the same official code."""

import numpy as np
import paddle
import pytest

import miziha
from conftest import randomize, state_arrays
from miziha.models import ASMLP
from network_contract import (check_classifier, check_export, check_features, check_frozen_stages,
                              check_official_keys, official_shapes, trainable_parameters)
from reference import linear
from reference_asmlp import as_block, as_patch_merging, group_norm_1
from reference_cyclemlp import conv2d

#: Parameters of the official models with 1000 classes (official code, ``numel`` summed).
OFFICIAL_PARAMETERS = {"asmlp_tiny": 28_282_696, "asmlp_small": 49_594_696,
                       "asmlp_base": 87_752_808}

TINY = dict(embed_dim=10, depths=(1, 1, 2, 1), mlp_ratio=2.0, num_classes=5)


def reference_network(x, params, depths, shift_size=5, patch=4):
    """The official AS_MLP (inference) on x [B, 3, H, W] float64 -> logits, H and W padded at
    the bottom/right to multiples of ``patch``; params keyed like the official state dict
    (Paddle layouts)."""
    def sub(prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    _, _, h, w = x.shape
    x = np.pad(x, ((0, 0), (0, 0), (0, -h % patch), (0, -w % patch))).transpose(0, 2, 3, 1)
    x = conv2d(x, params["patch_embed.proj.weight"], params["patch_embed.proj.bias"],
               stride=patch, padding=0)
    x = group_norm_1(x, params["patch_embed.norm.weight"], params["patch_embed.norm.bias"])
    for i, depth in enumerate(depths):
        for j in range(depth):
            x = as_block(x, sub(f"layers.{i}.blocks.{j}."), shift_size)
        if i < len(depths) - 1:
            x = as_patch_merging(x, sub(f"layers.{i}.downsample."))
    x = group_norm_1(x, params["norm.weight"], params["norm.bias"]).mean(axis=(1, 2))
    return linear(x, params["head.weight"], params["head.bias"])


def test_tiny_has_the_official_names_shapes_and_parameter_count():
    model = miziha.create_model("asmlp_tiny")
    assert trainable_parameters(model) == OFFICIAL_PARAMETERS["asmlp_tiny"]
    check_official_keys(model, official_shapes("asmlp_tiny"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["asmlp_small", "asmlp_base"])
def test_parameter_count_is_the_official_one(name):
    assert trainable_parameters(miziha.create_model(name)) == OFFICIAL_PARAMETERS[name]


@pytest.mark.parametrize("name, rate", [("asmlp_tiny", 0.2), ("asmlp_small", 0.3),
                                        ("asmlp_base", 0.5)])
def test_official_droppath_per_config(name, rate):
    model = miziha.create_model(name, num_classes=3, embed_dim=8)
    rates = [block.drop_path.p for layer in model.layers for block in layer.blocks]
    np.testing.assert_allclose(rates, np.linspace(0, rate, len(rates)), atol=1e-7)


@pytest.mark.parametrize("size", [(64, 64), (45, 27)])
def test_matches_numpy_reference(size):
    model = randomize(ASMLP(**TINY), std=0.2)
    model.eval()
    x = np.random.randn(2, 3, *size).astype("float32")
    ref = reference_network(x.astype(np.float64), state_arrays(model), TINY["depths"])
    np.testing.assert_allclose(model(paddle.to_tensor(x)).numpy(), ref, rtol=1e-4, atol=1e-4)


def test_network_contract(tmp_path):
    model = randomize(ASMLP(**TINY), std=0.2)
    assert [f["num_chs"] for f in model.feature_info] == [10, 20, 40, 80]
    check_features(model, paddle.randn([2, 3, 37, 50]))
    check_export(model, tmp_path / "asmlp", [(1, 32, 32), (2, 45, 27)])
    check_classifier(lambda **kw: ASMLP(**{**TINY, **kw}), paddle.randn([2, 3, 32, 32]))
    check_frozen_stages(lambda: ASMLP(frozen_stages=2, **TINY),
                        ["patch_embed.", "layers.0.", "layers.1."],
                        ["layers.2.", "layers.3.", "norm.", "head."],
                        paddle.randn([2, 3, 32, 32]))
    check_frozen_stages(lambda: ASMLP(frozen_stages=0, **TINY), ["patch_embed."],
                        ["layers.0."], paddle.randn([1, 3, 32, 32]))


def test_features_only_picks_stages():
    backbone = miziha.create_model("asmlp_tiny", features_only=True, out_indices=(0, -1))
    assert [f["reduction"] for f in backbone.feature_info] == [4, 32]
    assert [m.shape for m in backbone(paddle.randn([1, 3, 64, 96]))] == \
        [[1, 96, 16, 24], [1, 768, 2, 3]]


@pytest.mark.parametrize("size", [(224, 224), (97, 131)])
@pytest.mark.parametrize("use_recompute", [False, True])
def test_trains_at_any_size(size, use_recompute):
    model = ASMLP(use_recompute=use_recompute, droppath=0.1, dropout=0.1, **TINY)
    model.train()
    logits = model(paddle.randn([2, 3, *size]))
    assert logits.shape == [2, 5]
    logits.sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and np.isfinite(param.grad.numpy()).all(), name


def test_recompute_gives_the_same_gradients():
    x = paddle.randn([2, 3, 40, 40])
    grads = []
    for use_recompute in (False, True):
        paddle.seed(3)
        model = ASMLP(use_recompute=use_recompute, droppath=0.0, **TINY)
        model(x).sum().backward()
        grads.append({n: p.grad.numpy() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        np.testing.assert_allclose(grads[1][name], grad, rtol=1e-5, atol=1e-6, err_msg=name)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="depths"):
        ASMLP(depths=())
    with pytest.raises(ValueError, match="frozen_stages"):
        ASMLP(frozen_stages=5, **TINY)
    with pytest.raises(ValueError, match=r"ASMLP expects input \[B, 3, H, W\]"):
        ASMLP(**TINY)(paddle.randn([1, 1, 32, 32]))
    with pytest.raises(TypeError, match="unknown option"):
        miziha.create_model("asmlp_tiny", window_size=7)
