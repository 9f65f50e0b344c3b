"""CycleMLP networks (CycleNet, cyclemlp_b1 .. b5): official names and parameter counts, the
whole network against a float64 NumPy reference composed from the official blocks, the
network contract (features, export, frozen stages), training at 224 and an odd size.

``data/cyclemlp_b1_official_shapes.json`` is the ``state_dict()`` (names and shapes, in
order) of the official ``cycle_mlp.CycleMLP_B1`` (ShoufaChen/CycleMLP), dumped once with
PyTorch; the parameter counts below come from the same official code."""

import numpy as np
import paddle
import pytest

import miziha
from conftest import randomize, state_arrays
from miziha.models import CycleNet
from network_contract import (check_classifier, check_export, check_features, check_frozen_stages,
                              check_official_keys, official_shapes, trainable_parameters)
from reference import layer_norm, linear
from reference_cyclemlp import conv2d, cycle_block, cycle_downsample

#: Parameters of the official models with 1000 classes (official code, ``numel`` summed).
OFFICIAL_PARAMETERS = {"cyclemlp_b1": 15_155_400, "cyclemlp_b2": 26_802_504,
                       "cyclemlp_b3": 38_385_720, "cyclemlp_b4": 51_796_552,
                       "cyclemlp_b5": 75_747_280}

TINY = dict(layers=(1, 2, 1, 1), embed_dims=(8, 12, 16, 20), mlp_ratios=(2, 2, 1, 1),
            num_classes=5)


def reference_network(x, params, layers):
    """The official CycleNet (inference) on x [B, 3, H, W] float64 -> logits; params keyed
    like the official state dict (Paddle layouts)."""
    def sub(prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    x = conv2d(x.transpose(0, 2, 3, 1), params["patch_embed.proj.weight"],
               params["patch_embed.proj.bias"], stride=4, padding=2)
    for i, depth in enumerate(layers):
        for j in range(depth):
            x = cycle_block(x, sub(f"network.{2 * i}.{j}."))
        if i < len(layers) - 1:
            x = cycle_downsample(x, sub(f"network.{2 * i + 1}."))
    x = layer_norm(x, params["norm.weight"], params["norm.bias"]).mean(axis=(1, 2))
    return linear(x, params["head.weight"], params["head.bias"])


def test_b1_has_the_official_names_shapes_and_parameter_count():
    model = miziha.create_model("cyclemlp_b1")
    assert trainable_parameters(model) == OFFICIAL_PARAMETERS["cyclemlp_b1"]
    check_official_keys(model, official_shapes("cyclemlp_b1"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cyclemlp_b2", "cyclemlp_b3", "cyclemlp_b4", "cyclemlp_b5"])
def test_parameter_count_is_the_official_one(name):
    assert trainable_parameters(miziha.create_model(name)) == OFFICIAL_PARAMETERS[name]


def test_official_droppath_schedule():
    model = miziha.create_model("cyclemlp_b1", num_classes=3)
    rates = [block.drop_path.p for stage in model.network[::2] for block in stage.blocks]
    np.testing.assert_allclose(rates, np.linspace(0, 0.1, 10), atol=1e-7)


@pytest.mark.parametrize("size", [(32, 32), (45, 27)])
def test_matches_numpy_reference(size):
    model = randomize(CycleNet(**TINY), std=0.2)
    model.eval()
    x = np.random.randn(2, 3, *size).astype("float32")
    ref = reference_network(x.astype(np.float64), state_arrays(model), TINY["layers"])
    np.testing.assert_allclose(model(paddle.to_tensor(x)).numpy(), ref, rtol=1e-4, atol=1e-4)


def test_network_contract(tmp_path):
    model = randomize(CycleNet(**TINY), std=0.2)
    assert [f["num_chs"] for f in model.feature_info] == [8, 12, 16, 20]
    assert [f["module"] for f in model.feature_info] == [f"network.{i}" for i in (0, 2, 4, 6)]
    check_features(model, paddle.randn([2, 3, 35, 48]))  # H, W % 4 in (0, 3): ceil(H/4)
    check_export(model, tmp_path / "cyclemlp", [(1, 32, 32), (2, 45, 27)])
    check_classifier(lambda **kw: CycleNet(**{**TINY, **kw}), paddle.randn([2, 3, 32, 32]))
    check_frozen_stages(lambda: CycleNet(frozen_stages=2, **TINY),
                        ["patch_embed.", "network.0.", "network.1.", "network.2.", "network.3."],
                        ["network.4.", "network.5.", "network.6.", "norm.", "head."],
                        paddle.randn([2, 3, 32, 32]))
    check_frozen_stages(lambda: CycleNet(frozen_stages=0, **TINY), ["patch_embed."],
                        ["network.0."], paddle.randn([1, 3, 32, 32]))


def test_features_only_picks_stages():
    backbone = miziha.create_model("cyclemlp_b1", features_only=True, out_indices=(1, 3))
    assert [f["reduction"] for f in backbone.feature_info] == [8, 32]
    assert [m.shape for m in backbone(paddle.randn([1, 3, 64, 96]))] == \
        [[1, 128, 8, 12], [1, 512, 2, 3]]


@pytest.mark.parametrize("size", [(224, 224), (97, 131)])
@pytest.mark.parametrize("use_recompute", [False, True])
def test_trains_at_any_size(size, use_recompute):
    model = CycleNet(use_recompute=use_recompute, droppath=0.1, **TINY)
    model.train()
    x = paddle.randn([2, 3, *size])
    logits = model(x)
    assert logits.shape == [2, 5]
    logits.sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and np.isfinite(param.grad.numpy()).all(), name


def test_recompute_gives_the_same_gradients():
    x = paddle.randn([2, 3, 40, 40])
    grads = []
    for use_recompute in (False, True):
        paddle.seed(3)
        model = CycleNet(use_recompute=use_recompute, **TINY)
        model(x).sum().backward()
        grads.append({n: p.grad.numpy() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        np.testing.assert_allclose(grads[1][name], grad, rtol=1e-5, atol=1e-6, err_msg=name)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="one entry per stage"):
        CycleNet(layers=(1, 1), embed_dims=(8, 16, 32), mlp_ratios=(4, 4))
    with pytest.raises(ValueError, match="frozen_stages"):
        CycleNet(frozen_stages=5, **TINY)
    with pytest.raises(ValueError, match=r"CycleNet expects input \[B, 3, H, W\]"):
        CycleNet(**TINY)(paddle.randn([1, 4, 32, 32]))
    with pytest.raises(TypeError, match="unknown option"):
        miziha.create_model("cyclemlp_b1", window_size=7)
