"""Export a registered network in both deployment formats and print their parity with eager
Paddle.

Usage: python examples/export_model.py MODEL [--out DIR] [--num-classes N]
                                       [--sizes 1x224x224 2x97x131] [--opset 17]

Writes ``DIR/MODEL.json`` + ``DIR/MODEL.pdiparams`` (``paddle.inference``, from
``miziha.export.save_for_inference``) and ``DIR/MODEL.onnx`` (``miziha.export.to_onnx``),
both with dynamic batch, height and width, then runs each format at every ``--sizes`` entry
(``BxHxW``, random input) and prints the largest difference from the eager network's output.
The network has its initial (random) weights: this shows the export, not a checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Tuple

import numpy as np
import paddle

import miziha
from miziha.export import Predictor, save_for_inference, to_onnx


def _size(text: str) -> Tuple[int, int, int]:
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"a size is BxHxW with positive ints, got {text!r}")
    return tuple(int(p) for p in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=miziha.list_models(), metavar="MODEL",
                        help="a name of miziha.list_models()")
    parser.add_argument("--out", type=Path, default=Path("exported"))
    parser.add_argument("--num-classes", type=int, default=None,
                        help="default: the builder's")
    parser.add_argument("--sizes", nargs="+", type=_size,
                        default=[(1, 224, 224), (2, 97, 131)])
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()

    paddle.seed(0)
    options = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = miziha.create_model(args.model, **options)
    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = save_for_inference(model, args.out / args.model, in_channels=3)
    onnx_path = to_onnx(model, args.out / f"{args.model}.onnx", opset=args.opset)
    print(f"wrote {prefix}.json, {prefix}.pdiparams and {onnx_path}")

    import onnxruntime as ort
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    predictor = Predictor(prefix)
    rng = np.random.default_rng(0)
    print("| input [B, H, W] | output | max abs(eager) | paddle.inference diff | "
          "onnxruntime diff |\n|---|---|---|---|---|")
    for batch, height, width in args.sizes:
        x = rng.standard_normal((batch, 3, height, width)).astype("float32")
        with paddle.no_grad():
            eager = model(paddle.to_tensor(x)).numpy()
        onnx_out = session.run(None, {session.get_inputs()[0].name: x})[0]
        paddle_out = predictor(x)
        print(f"| {[batch, height, width]} | {list(eager.shape)} | "
              f"{np.abs(eager).max():.3g} | {np.abs(paddle_out - eager).max():.2e} | "
              f"{np.abs(onnx_out - eager).max():.2e} |")


if __name__ == "__main__":
    main()
