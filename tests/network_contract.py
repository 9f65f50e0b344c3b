"""What every official network of the zoo promises, as checks a family's test calls with a
tiny configuration of that family: official keys, features, forward_features/forward_head,
export with dynamic sizes, frozen stages, the classifier API (``num_classes=0``,
``reset_classifier``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import paddle

from miziha.models.features import FeatureExtractor
from miziha.weights import official_to_miziha
from miziha.weights.convert import convert_state, head_names

DATA = Path(__file__).resolve().parent / "data"


def official_shapes(name: str) -> Dict[str, List[int]]:
    """``tests/data/<name>_official_shapes.json``: the official state dict's (name, shape)
    pairs in order, dumped once from the official PyTorch code."""
    return json.loads((DATA / f"{name}_official_shapes.json").read_text())


def random_official_state(shapes: Dict[str, List[int]], seed: int = 0) -> Dict[str, np.ndarray]:
    """Random arrays in the official names and PyTorch layouts (integer buffers as int64)."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in shapes.items():
        leaf = name.rpartition(".")[2]
        if leaf in ("num_batches_tracked", "relative_position_index"):
            state[name] = np.zeros(shape, dtype="int64")
        elif leaf == "running_var":
            state[name] = rng.uniform(0.5, 1.5, shape).astype("float32")
        else:
            state[name] = rng.normal(0.0, 0.05, shape).astype("float32")
    return state


def check_official_keys(model: paddle.nn.Layer, shapes: Dict[str, List[int]]) -> None:
    """Every official tensor maps one to one onto ``model`` (names, shapes after the
    documented renames) and the model computes with them."""
    converted = official_to_miziha(model, random_official_state(shapes))
    model.set_state_dict(converted)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), converted[name], err_msg=name)


def trainable_parameters(model: paddle.nn.Layer) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters() if not p.stop_gradient)


def check_features(model: paddle.nn.Layer, x: paddle.Tensor) -> None:
    """``feature_info`` describes ``forward_intermediates``; ``features_only`` picks stages;
    ``forward`` is ``forward_head(forward_features(x))``."""
    model.eval()
    maps = model.forward_intermediates(x)
    assert len(maps) == len(model.feature_info)
    height, width = x.shape[2:]
    for feature, info in zip(maps, model.feature_info):
        reduction = info["reduction"]
        assert feature.shape[:2] == [x.shape[0], info["num_chs"]], info
        assert feature.shape[2:] == [-(-height // reduction), -(-width // reduction)], info
    last = FeatureExtractor(model, [-1])(x)
    np.testing.assert_allclose(last[0].numpy(), maps[-1].numpy(), rtol=1e-5, atol=1e-6)
    logits = model.forward_head(model.forward_features(x))
    np.testing.assert_allclose(model(x).numpy(), logits.numpy(), rtol=1e-5, atol=1e-6)


def check_export(model: paddle.nn.Layer, path: Path, sizes: Sequence[Sequence[int]],
                 in_channels: int = 3) -> None:
    """``paddle.jit.save`` with dynamic batch, height and width; the loaded program gives
    eager's logits at every size of ``sizes`` (``[B, H, W]``)."""
    model.eval()
    spec = [paddle.static.InputSpec([None, in_channels, None, None], "float32")]
    paddle.jit.save(model, str(path), input_spec=spec)
    loaded = paddle.jit.load(str(path))
    rng = np.random.default_rng(5)
    for batch, height, width in sizes:
        x = paddle.to_tensor(rng.standard_normal((batch, in_channels, height, width))
                             .astype("float32"))
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)


def check_classifier(build: Callable[..., paddle.nn.Layer], x: paddle.Tensor) -> None:
    """timm's classifier API on ``build(num_classes=k)``: ``num_classes=0`` has no
    classifier parameters and outputs the pooled features (``forward_head(...,
    pre_logits=True)``); ``reset_classifier(k)`` puts a fresh Linear of ``k`` outputs in
    ``get_classifier()``'s place and 0 takes it away again; a classed model's state dict
    loads strictly into the headless one, its classifier reported as skipped; a negative
    count is refused."""
    paddle.seed(0)
    headless = build(num_classes=0)
    headless.eval()
    assert headless.num_classes == 0 and head_names(headless) == []
    assert isinstance(headless.get_classifier(), paddle.nn.Identity)
    assert headless(x).shape == [x.shape[0], headless.num_features]

    classed = build(num_classes=3)
    state = {k: v.numpy() for k, v in classed.state_dict().items()}
    arrays, report = convert_state(headless, state, "paddle", source="miziha")
    assert report.head_skipped == sorted(head_names(classed)) and report.head_skipped
    assert not report.missing and not report.unexpected
    headless.set_state_dict(arrays)
    classed.eval()
    loaded = headless(x).numpy()
    np.testing.assert_allclose(
        loaded, classed.forward_head(classed.forward_features(x), pre_logits=True).numpy(),
        rtol=1e-5, atol=1e-6)

    headless.reset_classifier(4, global_pool="avg")
    head = headless.get_classifier()
    assert headless.num_classes == 4 and headless(x).shape == [x.shape[0], 4]
    assert len(head_names(headless)) == 2 and head.weight.shape[-1] == 4
    assert not head.training  # the model's mode (eval), not a new layer's
    assert all(not p.stop_gradient for p in head.parameters())
    headless.reset_classifier(0)
    np.testing.assert_allclose(headless(x).numpy(), loaded, rtol=1e-5, atol=1e-6)
    headless.to(dtype="float64")
    headless.reset_classifier(2)
    assert {str(p.dtype) for p in headless.get_classifier().parameters()} == {"paddle.float64"}
    try:
        headless.reset_classifier(2, global_pool="max")
    except ValueError as error:
        assert "pools by average only (None or 'avg'), got 'max'" in str(error)
    else:
        raise AssertionError("global_pool='max' was accepted")
    try:
        build(num_classes=-1)
    except ValueError as error:
        assert "num_classes must be 0 (no classifier) or more, got -1" in str(error)
    else:
        raise AssertionError("num_classes=-1 was accepted")


def check_frozen_stages(build: Callable[..., paddle.nn.Layer], frozen: Sequence[str],
                        trained: Sequence[str], x: paddle.Tensor) -> None:
    """``build()`` gives a network with ``frozen_stages=k``: parameters under the prefixes
    ``frozen`` (the stem and the first k stages) get no gradient, their BatchNorm statistics
    stay and their dropout / stochastic depth is off; those under ``trained`` get gradients,
    also after a parent layer's ``train()`` switched every sublayer to training."""
    model = build()
    model.train(False)
    paddle.nn.LayerList([model]).train()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    model(x).sum().backward()
    params = dict(model.named_parameters())
    statistics = {f"{prefix}.{stat}" for prefix, layer in model.named_sublayers()
                  if isinstance(layer, paddle.nn.layer.norm._BatchNormBase)
                  for stat in ("_mean", "_variance")}  # Paddle parameters that never train
    for name, param in params.items():
        if name.startswith(tuple(frozen)):
            assert param.stop_gradient and param.grad is None, name
        elif name.startswith(tuple(trained)) and name not in statistics:
            assert not param.stop_gradient and param.grad is not None, name
    for name, value in model.state_dict().items():
        if name.startswith(tuple(frozen)):
            np.testing.assert_array_equal(value.numpy(), before[name], err_msg=name)
    for name, layer in model.named_sublayers():
        if "Drop" in type(layer).__name__ and name.startswith(tuple(frozen)):
            assert not layer.training, name
    assert any(name.startswith(tuple(frozen)) for name in params), "nothing was frozen"
