"""PaleTransformer and pale_tiny / pale_small / pale_base: equivalence with an independent
float64 NumPy network built from ``reference_pale`` (no official code exists), the paper's
model sizes, the network contract (features, export, frozen stages, recompute), errors."""

import inspect

import numpy as np
import paddle
import pytest

import miziha
from miziha.models import PaleTransformer
from conftest import randomize, state_arrays
from network_contract import (check_classifier, check_export, check_features, check_frozen_stages,
                              trainable_parameters)
from reference import layer_norm, linear
from reference_pale import pale_block, pale_merge

TINY = dict(embed_dim=8, depths=(1, 1, 2), num_heads=(2, 2, 4), pale_size=2)


def reference_stem(x, weight, bias):
    """Conv2d 7x7, stride 4, padding 3 on x [B, C, H, W] -> [B, ceil(H/4), ceil(W/4), C_out];
    weight [C_out, C, 7, 7]; a sum over the 49 taps."""
    b, _, h, w = x.shape
    ho, wo = (h - 1) // 4 + 1, (w - 1) // 4 + 1
    xp = np.pad(x, ((0, 0), (0, 0), (3, 3), (3, 3)))
    y = np.zeros((b, ho, wo, weight.shape[0])) + bias
    for dy in range(7):
        for dx in range(7):
            tap = xp[:, :, dy:dy + 4 * ho - 3:4, dx:dx + 4 * wo - 3:4]  # [B, C, ho, wo]
            y += np.einsum("bchw,oc->bhwo", tap, weight[:, :, dy, dx])
    return y


def reference_pale_transformer(x, params, depths, num_heads, pale_size):
    """The whole classifier on x [B, C, H, W] -> logits; params keyed like miziha's."""
    def sub(prefix):
        return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}

    x = reference_stem(x, params["patch_embed.proj.weight"], params["patch_embed.proj.bias"])
    x = layer_norm(x, params["patch_embed.norm.weight"], params["patch_embed.norm.bias"])
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        for j in range(depth):
            x = pale_block(x, sub(f"layers.{i}.blocks.{j}."), heads, pale_size)
        if i < len(depths) - 1:
            x = pale_merge(x, sub(f"layers.{i}.downsample."))
    x = layer_norm(x, params["norm.weight"], params["norm.bias"]).mean(axis=(1, 2))
    return linear(x, params["head.weight"], params["head.bias"])


@pytest.mark.parametrize("size", [(24, 24), (26, 19)])
def test_matches_the_numpy_reference(size):
    model = randomize(PaleTransformer(num_classes=5, **TINY), std=0.2)
    model.eval()
    x = np.random.randn(2, 3, *size).astype("float32")
    out = model(paddle.to_tensor(x)).numpy()
    ref = reference_pale_transformer(x.astype(np.float64), state_arrays(model), TINY["depths"],
                                     TINY["num_heads"], TINY["pale_size"])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_tiny_configuration_keeps_the_network_contract(tmp_path):
    """Features, forward_features/forward_head, export at two sizes, frozen stages, recompute."""
    model = randomize(PaleTransformer(num_classes=3, **TINY), std=0.1)
    model(paddle.randn([2, 3, 21, 30])).sum().backward()
    assert model.patch_embed.proj.weight.grad is not None
    check_features(model, paddle.randn([2, 3, 29, 18]))
    assert [e["reduction"] for e in model.feature_info] == [4, 8, 16]
    assert [e["num_chs"] for e in model.feature_info] == [8, 16, 32]
    check_export(model, tmp_path / "pale", [(1, 32, 32), (2, 27, 40)])
    x = paddle.randn([2, 3, 24, 24])
    check_classifier(lambda **kw: PaleTransformer(**TINY, **kw), paddle.randn([2, 3, 32, 32]))
    check_frozen_stages(lambda: PaleTransformer(num_classes=3, frozen_stages=0, **TINY),
                        ["patch_embed"], ["layers.0", "layers.2", "norm", "head"], x)
    check_frozen_stages(lambda: PaleTransformer(num_classes=3, frozen_stages=1, **TINY),
                        ["patch_embed", "layers.0"], ["layers.1", "layers.2", "norm", "head"], x)
    plain = PaleTransformer(num_classes=3, droppath=0.0, **TINY)
    recomputed = PaleTransformer(num_classes=3, droppath=0.0, use_recompute=True, **TINY)
    recomputed.set_state_dict(plain.state_dict())
    assert all(layer.use_recompute for layer in recomputed.layers)
    for net in (plain, recomputed):
        net(x).sum().backward()
    np.testing.assert_allclose(recomputed.layers[0].blocks[0].attn.qkv.weight.grad.numpy(),
                               plain.layers[0].blocks[0].attn.qkv.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-6)


#: name -> (paper parameters in M, miziha's count, miziha's MACs at 224, droppath default).
SIZES = {"pale_tiny": (22, 21_567_080, 4_166_575_104, 0.2),
         "pale_small": (48, 48_035_752, 8_923_239_936, 0.3),
         "pale_base": (85, 84_961_512, 15_462_156_288, 0.5)}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name == "pale_tiny" else pytest.mark.slow)
    for name in SIZES])
def test_networks_have_the_papers_sizes(name):
    paper, params, macs, droppath = SIZES[name]
    model = miziha.create_model(name)
    assert trainable_parameters(model) == params
    assert round(params / 1e6) == paper
    assert miziha.flops(model, [3, 224, 224]).total_macs == macs
    assert [layer.depth for layer in model.layers] == [2, 2, 16, 2]
    assert [layer.pale_size for layer in model.layers] == [7] * 4
    rates = [block.drop_path.p for layer in model.layers for block in layer.blocks]
    assert rates[0] == 0.0 and abs(rates[-1] - droppath) < 1e-6
    default = inspect.signature(miziha.models.MODELS[name]).parameters["droppath"].default
    assert default == droppath


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_classes=-1), "num_classes"),
    (dict(depths=(1, 1), num_heads=(2,)), "one entry per stage"),
    (dict(num_heads=(3, 2, 4), embed_dim=12), "num_heads must be even"),
    (dict(frozen_stages=4), "frozen_stages must be -1"),
])
def test_bad_arguments(kwargs, message):
    options = dict(TINY)
    options.update(kwargs)
    with pytest.raises(ValueError, match=message):
        PaleTransformer(**options)


def test_wrong_input_channels():
    model = PaleTransformer(num_classes=2, **TINY)
    with pytest.raises(ValueError, match=r"expects input \[B, 3, H, W\]"):
        model(paddle.randn([1, 1, 16, 16]))
