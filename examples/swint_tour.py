"""A five-minute tour of miziha.SwinT: the Conv2D-like API, any input size, a conv swapped
for window attention in a small CNN, and export with dynamic height and width.

Usage: python examples/swint_tour.py [--output DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn

import miziha
from miziha.export import Predictor, save_for_inference
from miziha.layers.windows import window_tables


def show_api() -> None:
    """The calls users already write, with the shapes they give."""
    x = paddle.ones([1, 96, 224, 224])
    for downsample in (False, True):
        layer = miziha.SwinT(in_channels=96, out_channels=256, input_resolution=(224, 224),
                             num_heads=8, window_size=7, downsample=downsample)
        print(f"SwinT(96 -> 256, downsample={downsample}): {list(x.shape)} -> {list(layer(x).shape)}")


def show_sizes(sizes=((56, 56), (30, 45), (7, 7), (5, 20), (1, 1))) -> None:
    """How windows, shifts and padding follow the input size (window 7)."""
    layer = miziha.SwinT(32, 64, num_heads=2, window_size=7, downsample=True)
    print("\ninput     output   window  shift   windows  padded tokens")
    for h, w in sizes:
        geo = window_tables(h, w, (7, 7), (3, 3))
        out = layer(paddle.randn([1, 32, h, w]))
        padded = geo.num_windows * geo.window_tokens - h * w
        print(f"{h:>3}x{w:<4} {out.shape[2]:>3}x{out.shape[3]:<4} {str(geo.window):8}"
              f"{str(geo.shift):8}{geo.num_windows:>5}  {padded:>8}")


def small_cnn(swin: bool) -> nn.Sequential:
    """A CNN whose middle 3x3 convs are Conv2D or SwinT with the same channels."""
    def mid(c_in, c_out, stride):
        if swin:
            return miziha.SwinT(c_in, c_out, num_heads=c_in // 16, window_size=4,
                                downsample=stride == 2)
        return nn.Conv2D(c_in, c_out, 3, stride=stride, padding=1)
    return nn.Sequential(nn.Conv2D(3, 32, 3, padding=1), nn.ReLU(), mid(32, 64, 2), nn.ReLU(),
                         mid(64, 64, 1), nn.AdaptiveAvgPool2D(1), nn.Flatten(),
                         nn.Linear(64, 10))


def show_swap(batch: int = 16) -> None:
    """The same network with its 3x3 convs swapped: parameters and a training step."""
    print("\nnetwork          params   train step ms (batch 16, 32x32, median of 5)")
    x, y = paddle.randn([batch, 3, 32, 32]), paddle.randint(0, 10, [batch, 1])
    for swin in (False, True):
        net = small_cnn(swin)
        opt = paddle.optimizer.Momentum(0.01, parameters=net.parameters())
        times = []
        for _ in range(6):
            start = time.perf_counter()
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            opt.clear_grad()
            times.append((time.perf_counter() - start) * 1e3)
        params = sum(int(np.prod(p.shape)) for p in net.parameters())
        print(f"{'with SwinT' if swin else 'plain CNN':16} {params:>7}   "
              f"{np.median(times[1:]):.1f}")


def show_export(output: Path) -> None:
    """Save once with dynamic H and W; run the file through paddle.inference at two sizes."""
    layer = miziha.SwinT(32, 64, num_heads=2, window_size=7, downsample=True)
    path = save_for_inference(layer, output / "swint", in_channels=32)
    predictor = Predictor(path)
    print(f"\nexported to {path}.json / .pdiparams; paddle.inference vs dygraph:")
    for size in ((56, 56), (33, 20)):
        x = np.random.randn(2, 32, *size).astype("float32")
        out = predictor(x)
        diff = np.abs(out - layer(paddle.to_tensor(x)).numpy()).max()
        print(f"  input {list(x.shape)} -> {list(out.shape)}, max |difference| {diff:.1e}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the exported model (default: a temporary folder)")
    args = parser.parse_args(argv)
    paddle.seed(0)
    np.random.seed(0)
    show_api()
    show_sizes()
    show_swap()
    if args.output is None:
        with tempfile.TemporaryDirectory() as tmp:
            show_export(Path(tmp))
    else:
        args.output.mkdir(parents=True, exist_ok=True)
        show_export(args.output)


if __name__ == "__main__":
    main()
