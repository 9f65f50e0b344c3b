"""The Conv2D-like contract, checked for every mixer in miziha.MIXERS: shapes at any size,
downsampling, NHWC, export parity, errors, recompute, replace_conv, the networks."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest

import miziha
from miziha.export import Predictor, save_for_inference
from conftest import load_example, outputs_and_gradients, randomize

MIXERS = sorted(miziha.MIXERS)


def _layer(name, in_channels=16, out_channels=24, **kwargs):
    """A small layer of every design; sizes that make every design pad somewhere."""
    size_argument = {"swin": "window_size", "swinv2": "window_size", "pale": "pale_size",
                     "cswin": "split_size", "asmlp": "shift_size"}.get(name)
    options = {size_argument: 3} if size_argument else {}
    options.update(kwargs)
    return miziha.MIXERS[name](in_channels, out_channels, **options)


def test_every_design_is_registered():
    assert set(MIXERS) == {"swin", "swinv2", "pale", "cswin", "axial", "cyclemlp", "asmlp"}
    assert "swin" in MIXERS and all(issubclass(c, miziha.TokenMixer)
                                    for c in miziha.MIXERS.values())


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("size, downsample, expected", [
    ((7, 7), False, (7, 7)), ((1, 1), False, (1, 1)), ((1, 1), True, (1, 1)),
    ((9, 5), True, (5, 3)), ((4, 11), False, (4, 11))])
def test_any_size_and_downsampling(name, size, downsample, expected):
    layer = _layer(name, downsample=downsample)
    assert layer(paddle.randn([2, 16, *size])).shape == [2, 24, *expected]


@pytest.mark.parametrize("name", MIXERS)
def test_nhwc_matches_nchw(name):
    nchw = randomize(_layer(name, downsample=True))
    nhwc = _layer(name, downsample=True, data_format="NHWC")
    nhwc.set_state_dict(nchw.state_dict())
    x = paddle.randn([2, 16, 6, 5])
    np.testing.assert_allclose(nhwc(x.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2]).numpy(),
                               nchw(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("data_format, downsample", [("NCHW", True), ("NHWC", False)])
def test_export_with_dynamic_size_matches_eager(tmp_path, name, data_format, downsample):
    layer = randomize(_layer(name, downsample=downsample, data_format=data_format))
    layer.eval()
    predictor = Predictor(save_for_inference(layer, tmp_path / name, 16, data_format))
    for size in [(14, 14), (9, 11)]:
        x = np.random.default_rng(size[1]).standard_normal((2, 16, *size)).astype("float32")
        if data_format == "NHWC":
            x = x.transpose(0, 2, 3, 1).copy()
        np.testing.assert_allclose(predictor(x), layer(paddle.to_tensor(x)).numpy(),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", MIXERS)
@pytest.mark.parametrize("downsample, out_channels", [(True, 24), (False, 16)])
def test_gradients_reach_every_parameter(name, downsample, out_channels):
    layer = randomize(_layer(name, out_channels=out_channels, downsample=downsample))
    _, x_grad, grads = outputs_and_gradients(
        layer, np.random.default_rng(1).standard_normal((2, 16, 7, 6)).astype("float32"))
    assert np.abs(x_grad).sum() > 0
    for param_name, grad in grads.items():
        assert np.isfinite(grad).all() and np.abs(grad).sum() > 0, param_name


@pytest.mark.parametrize("name", MIXERS)
def test_recompute_gives_the_sameoutputs_and_gradients(name):
    plain = randomize(_layer(name, downsample=True, droppath=0.2))
    recomputed = _layer(name, downsample=True, droppath=0.2, use_recompute=True)
    recomputed.set_state_dict(plain.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 16, 7, 6)).astype("float32")
    (out, x_grad, grads), (out_r, x_grad_r, grads_r) = (
        outputs_and_gradients(layer, x) for layer in (plain, recomputed))
    np.testing.assert_allclose(out_r, out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x_grad_r, x_grad, rtol=1e-4, atol=1e-5)
    for param_name, grad in grads.items():
        np.testing.assert_allclose(grads_r[param_name], grad, rtol=1e-4, atol=1e-5,
                                   err_msg=param_name)


@pytest.mark.parametrize("name", MIXERS)
def test_cpu_sub_batches_give_the_sameoutputs_and_gradients(monkeypatch, name):
    layer = randomize(_layer(name, downsample=True))
    x = np.random.default_rng(3).standard_normal((5, 16, 7, 6)).astype("float32")
    whole = outputs_and_gradients(layer, x)
    sizes = []
    budget = layer.sample_bytes(layer.layout(7, 6), 4)  # one sample's widest temporary
    monkeypatch.setattr(miziha.paddle_fixes.cpu, "BATCH_CHUNK_BYTES", budget)
    layer.blocks[0].register_forward_pre_hook(lambda _, inputs: sizes.append(
        inputs[0].shape[0]))
    split = outputs_and_gradients(layer, x)
    assert sizes == [1] * 5
    np.testing.assert_allclose(split[0], whole[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(split[1], whole[1], rtol=1e-4, atol=1e-5)
    for param_name, grad in whole[2].items():
        np.testing.assert_allclose(split[2][param_name], grad, rtol=1e-4, atol=1e-4,
                                   err_msg=param_name)


@pytest.mark.parametrize("name", MIXERS)
def test_bad_inputs_get_clear_errors(name):
    layer = _layer(name)
    with pytest.raises(ValueError, match="expects 16 input channels"):
        layer(paddle.randn([1, 8, 5, 5]))
    with pytest.raises(ValueError, match="4-D NCHW input"):
        layer(paddle.randn([16, 5, 5]))
    with pytest.raises(TypeError, match=r"float32 parameters and got a float64 input: "
                                        r"cast the input with x.astype\('float32'\)"):
        layer(paddle.randn([1, 16, 5, 5], dtype="float64"))
    with pytest.raises(TypeError, match="floating-point input .* got int32"):
        layer(paddle.ones([1, 16, 5, 5], dtype="int32"))
    with pytest.raises(ValueError, match="H and W of at least 1"):
        layer(paddle.randn([1, 16, 0, 5]))
    with pytest.raises(TypeError, match="paddle.Tensor"):
        layer(np.zeros((1, 16, 5, 5), "float32"))
    assert layer(paddle.randn([0, 16, 5, 5])).shape == [0, 24, 5, 5]


@pytest.mark.parametrize("name", MIXERS)
def test_bad_arguments_get_clear_errors(name):
    layer_class = miziha.MIXERS[name]
    with pytest.raises(ValueError, match="in_channels must be a positive int, got 0"):
        layer_class(0, 8)
    with pytest.raises(TypeError, match="downsample must be a bool"):
        layer_class(16, 16, downsample="yes")
    with pytest.raises(ValueError, match="data_format must be 'NCHW' or 'NHWC'"):
        layer_class(16, 16, data_format="CHW")
    with pytest.raises(ValueError, match="droppath must give one rate per block"):
        layer_class(16, 16, droppath=[0.1] * 3)


@pytest.mark.parametrize("name", MIXERS)
def test_flops_counts_more_than_the_layers_it_can_see(name):
    report = miziha.flops(nn.Sequential(_layer(name, 32, 32)), [2, 32, 14, 14])
    (row,) = report.rows
    assert row.kind == type(miziha.MIXERS[name](32, 32)).__name__
    assert row.macs > 0 and row.conv_macs == 2 * 32 * 14 * 14 * 32 * 9


@pytest.mark.parametrize("name", MIXERS)
def test_replace_conv_converts_resnet50_and_it_trains_a_step(name):
    model = paddle.vision.models.resnet50(num_classes=4)
    model, report = miziha.replace_conv(model, name)
    assert len(report.replaced) == 16 and report.mixer == name
    assert all(isinstance(model.layer1[0].conv2, miziha.MIXERS[name]) for _ in [0])
    optimizer = paddle.optimizer.SGD(0.01, parameters=model.parameters())
    loss = nn.functional.cross_entropy(model(paddle.randn([2, 3, 32, 32])),
                                       paddle.to_tensor([[1], [3]]))
    loss.backward()
    optimizer.step()
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("name", MIXERS)
def test_every_mixer_has_a_resnet50_and_a_unet(name):
    model = miziha.create_model(f"{name}_resnet50", num_classes=3)
    assert isinstance(model.stages[1][0].conv2, miziha.MIXERS[name])
    assert model(paddle.randn([1, 3, 32, 32])).shape == [1, 3]
    unet = miziha.create_model(f"{name}_unet", num_classes=2, widths=(16, 32))
    assert unet(paddle.randn([1, 3, 10, 9])).shape == [1, 2, 10, 9]


def test_cswin_resnet50_takes_the_official_split_size_per_stage():
    def splits(model):
        return [stage[0].conv2.split_size for stage in model.stages]

    assert splits(miziha.create_model("cswin_resnet50", num_classes=2)) == [1, 2, 7, 7]
    assert splits(miziha.create_model("cswin_resnet50", num_classes=2, split_size=3)) == [3] * 4
    assert splits(miziha.create_model("cswin_resnet50", num_classes=2,
                                      official_stages=False)) == [7] * 4
    assert miziha.create_model("pale_resnet50", num_classes=2).stages[0][0].conv2.pale_size == 7
    from miziha.mixers import stage_options
    assert stage_options("swin", 0) == {} and stage_options("cswin", 1) == {"split_size": 2}
    with pytest.raises(ValueError, match="stage must be 0..3"):
        stage_options("cswin", 4)
    with pytest.raises(ValueError, match="mixer must be one of"):
        stage_options("conv", 0)


def test_receptive_field_picture_shows_cswin_cross(tmp_path):
    module = load_example("receptive_fields")
    shade = module.receptive_field("cswin", dict(split_size=7), 0)
    cross = np.zeros((28, 28), dtype=bool)
    cross[7:14, :] = cross[:, 7:14] = True  # the token (13, 13): its horizontal and vertical stripe
    assert (shade[cross] > module.FLOOR).all() and (shade[~cross] == module.FLOOR).all()
    assert module.main(["--output", str(tmp_path / "fields.png")]).stat().st_size > 10_000


def test_receptive_field_picture_shows_the_axial_cross_and_swinv2_windows():
    module = load_example("receptive_fields")
    shade = module.receptive_field("axial", {}, 0)
    cross = np.zeros((28, 28), dtype=bool)
    cross[13, :] = cross[:, 13] = True  # the token's row and column, the whole map
    assert (shade[cross] > module.FLOOR).all() and (shade[~cross] == module.FLOOR).all()
    shade = module.receptive_field("swinv2", dict(window_size=7), 0)
    window = np.zeros((28, 28), dtype=bool)
    window[7:14, 7:14] = True  # plain windows: the token (13, 13) is in the second one
    assert (shade[window] > module.FLOOR).all() and (shade[~window] == module.FLOOR).all()
