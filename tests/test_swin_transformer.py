"""SwinTransformer / swin_tiny: any input size, equivalence with the reference, official
Swin-T figures, loading official checkpoint names, errors."""

import numpy as np
import paddle
import pytest

import miziha
from miziha.models import SwinTransformer, swin_tiny
from miziha.weights import official_to_miziha
from conftest import randomize, state_arrays
from reference import swin_transformer as reference_swin_transformer

TINY = dict(embed_dim=8, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=3, patch_size=2)


def test_swin_tiny_at_224_and_non_square_sizes():
    model = swin_tiny(num_classes=7)
    model.eval()
    assert model(paddle.randn([1, 3, 224, 224])).shape == [1, 7]
    assert model(paddle.randn([1, 3, 150, 97])).shape == [1, 7]  # not multiples of 4 or 32
    assert [layer.downsample is not None for layer in model.layers] == [True] * 3 + [False]
    assert [layer.num_heads for layer in model.layers] == [3, 6, 12, 24]
    assert [layer.depth for layer in model.layers] == [2, 2, 6, 2]


def test_swin_tiny_matches_the_official_size_and_flops():
    model = swin_tiny()
    report = miziha.flops(model, [3, 224, 224])
    assert report.total_params == 28_288_354  # the official Swin-T's parameter count
    assert abs(report.total_macs / 4.5e9 - 1) < 0.03  # paper: 4.5G; official flops(): 4.49G


def test_droppath_rises_linearly_to_the_official_swin_t_rate():
    rates = [block.drop_path.p for layer in swin_tiny().layers for block in layer.blocks]
    assert len(rates) == 12 and rates[0] == 0.0 and abs(rates[-1] - 0.2) < 1e-6
    assert np.allclose(np.diff(rates), 0.2 / 11, atol=1e-6)


@pytest.mark.parametrize("size", [(12, 12), (13, 9)])
def test_matches_the_numpy_reference(size):
    model = randomize(SwinTransformer(num_classes=5, **TINY), std=0.2)
    model.eval()
    x = np.random.randn(2, 3, *size).astype("float32")
    out = model(paddle.to_tensor(x)).numpy()
    ref = reference_swin_transformer(x.astype(np.float64), state_arrays(model), TINY["depths"],
                                     TINY["num_heads"], (3, 3), TINY["patch_size"])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_trains_and_exports_with_dynamic_sizes(tmp_path):
    model = SwinTransformer(num_classes=3, **TINY)
    out = model(paddle.randn([2, 3, 11, 14]))
    out.sum().backward()
    assert model.patch_embed.proj.weight.grad is not None
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32")]
    paddle.jit.save(model, str(tmp_path / "swin"), input_spec=spec)
    loaded = paddle.jit.load(str(tmp_path / "swin"))
    for shape in ([1, 3, 16, 16], [2, 3, 13, 22]):
        x = paddle.randn(shape)
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)


def _official_state(depths, embed_dim, heads, window, patch, num_classes, channels=3):
    """Names and PyTorch layouts of an official Swin V1 classification checkpoint."""
    rng = np.random.default_rng(0)
    shapes = {"patch_embed.proj.weight": (embed_dim, channels, patch, patch),
              "patch_embed.proj.bias": (embed_dim,),
              "patch_embed.norm.weight": (embed_dim,), "patch_embed.norm.bias": (embed_dim,)}
    n = window * window
    for i, depth in enumerate(depths):
        dim = embed_dim * 2 ** i
        for j in range(depth):
            b = f"layers.{i}.blocks.{j}."
            shapes.update({
                b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
                b + "attn.relative_position_bias_table": ((2 * window - 1) ** 2, heads[i]),
                b + "attn.relative_position_index": (n, n),
                b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
                b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
                b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
                b + "mlp.fc1.weight": (4 * dim, dim), b + "mlp.fc1.bias": (4 * dim,),
                b + "mlp.fc2.weight": (dim, 4 * dim), b + "mlp.fc2.bias": (dim,)})
            if j % 2:
                shapes[b + "attn_mask"] = (4, n, n)
        if i < len(depths) - 1:
            shapes.update({f"layers.{i}.downsample.norm.weight": (4 * dim,),
                           f"layers.{i}.downsample.norm.bias": (4 * dim,),
                           f"layers.{i}.downsample.reduction.weight": (2 * dim, 4 * dim)})
    features = embed_dim * 2 ** (len(depths) - 1)
    shapes.update({"norm.weight": (features,), "norm.bias": (features,),
                   "head.weight": (num_classes, features), "head.bias": (num_classes,)})
    return {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}


def test_official_checkpoint_names_load():
    model = SwinTransformer(num_classes=5, **TINY)
    official = _official_state(TINY["depths"], 8, TINY["num_heads"], 3, 2, 5)
    model.set_state_dict(official_to_miziha(model, official))
    np.testing.assert_array_equal(model.head.weight.numpy(), official["head.weight"].T)
    np.testing.assert_array_equal(model.layers[1].blocks[1].attn.qkv.weight.numpy(),
                                  official["layers.1.blocks.1.attn.qkv.weight"].T)
    np.testing.assert_array_equal(model.layers[0].downsample.reduction.weight.numpy(),
                                  official["layers.0.downsample.reduction.weight"].T)
    np.testing.assert_array_equal(model.patch_embed.proj.weight.numpy(),
                                  official["patch_embed.proj.weight"])


def test_official_checkpoint_that_does_not_fit():
    model = SwinTransformer(num_classes=5, **TINY)
    official = _official_state(TINY["depths"], 8, TINY["num_heads"], 3, 2, 5)
    del official["norm.bias"]
    with pytest.raises(ValueError, match=r"missing \['norm.bias'\]"):
        official_to_miziha(model, official)
    official = _official_state(TINY["depths"], 8, TINY["num_heads"], 3, 2, 10)
    with pytest.raises(ValueError, match="head.weight: the model has shape"):
        official_to_miziha(model, official)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_classes=0), "num_classes"),
    (dict(depths=(2, 2), num_heads=(1,)), "one entry per stage"),
    (dict(depths=(2, 3), num_heads=(1, 2)), "depth must be even"),
    (dict(embed_dim=8, num_heads=(3, 6)), "divisible by num_heads"),
    (dict(droppath=1.5), "droppath"),
])
def test_bad_arguments(kwargs, message):
    options = dict(TINY, depths=(2, 2), num_heads=(1, 2))
    options.update(kwargs)
    with pytest.raises(ValueError, match=message):
        SwinTransformer(**options)


def test_wrong_input_channels():
    model = SwinTransformer(num_classes=2, **TINY)
    with pytest.raises(ValueError, match=r"expects input \[B, 3, H, W\]"):
        model(paddle.randn([1, 1, 16, 16]))
