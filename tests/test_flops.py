"""miziha.flops against known figures and hand counts."""

import paddle
import paddle.nn as nn
import pytest

import miziha
from conftest import load_example
from miziha.flops import conv3x3_macs
from miziha.models import SwinResNet


def test_resnet50_is_about_4_1_gmacs():
    report = miziha.flops(paddle.vision.models.resnet50(), [3, 224, 224])
    assert abs(report.total_macs / 1e9 - 4.1) < 0.05
    assert report.total_params == 25_557_032


def test_swint_row_counts_linears_norms_and_attention_by_hand():
    c, h, heads = 64, 56, 4
    layer = miziha.SwinT(c, c, num_heads=heads, window_size=7)
    report = miziha.flops(nn.Sequential(layer), [c, h, h])
    (row,) = report.rows
    tokens = h * h
    per_block = tokens * (12 * c * c + 2 * c) + 2 * 64 * 49 * 49 * c  # linears, 2 norms, attn
    assert row.kind == "SwinT" and row.macs == 2 * per_block
    assert row.conv_macs == conv3x3_macs(c, c, 1, h, h, 1) == tokens * 9 * c * c
    assert abs(row.ratio_to_conv - 3.01) < 0.01


def test_padding_is_counted():
    layer = miziha.SwinT(32, 32, num_heads=1, window_size=7)
    padded = miziha.flops(layer, [32, 8, 8]).total_macs   # padded to 14x14
    exact = miziha.flops(layer, [32, 14, 14]).total_macs
    assert padded > 0.5 * exact  # window work is for the padded map, not for 64 tokens


def test_swin_resnet_counts_every_swint_and_the_rest():
    report = miziha.flops(SwinResNet(num_classes=10), [3, 32, 32])
    assert sum(1 for r in report.rows if r.kind == "SwinT") == 16
    assert report.total_macs == sum(r.macs for r in report.rows)
    assert "GMACs" in report.table()


def test_bad_input_size():
    with pytest.raises(ValueError, match=r"\[C, H, W\] or \[B, C, H, W\]"):
        miziha.flops(nn.Conv2D(3, 3, 3), [224, 224])


def test_model_costs_example_prints_the_readme_table():
    module = load_example("model_costs")
    table = module.cost_table([32])
    assert table.count("| 32x32 |") == 3 and "| 1.00 |" in table
    assert "| SwinUNet | 32x32 |" in module.unet_table(32)
    assert "| Swin-T (1000 classes) | 224x224 | 28.29 | 4.494 | 1.10 |" in module.swin_table()
