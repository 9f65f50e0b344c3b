"""What one token sees in one block of each mixer: the input positions that the centre
output token of a block depends on, drawn from the layers themselves (gradients).

Writes docs/receptive_fields.png (or --output). Each panel is a 28x28 map; the marked
token is the output of the block's residual branches (block(x) - x), and the shade of an
input is log10 of its gradient over the largest, from -6 (white) to 0 (dark). Faint cells
everywhere are what reaches every token through per-sample statistics (AS-MLP's
GroupNorm(1, C), CycleMLP's pooled branch weights). Swin shows its plain and its shifted
block. Swin V2 starts its res-post-norms at zero (an identity block, as officially), so
here those norms get weight 1; axial attention sees the token's whole row and column.

  python examples/receptive_fields.py
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import paddle

import miziha

#: Panel title -> (mixer, options, block index).
PANELS: Dict[str, Tuple[str, dict, int]] = {
    "Swin W-MSA (window 7)": ("swin", dict(window_size=7), 0),
    "Swin SW-MSA (shifted)": ("swin", dict(window_size=7), 1),
    "Swin V2 SW-MSA (window 7)": ("swinv2", dict(window_size=7), 1),
    "Pale (pale_size 7)": ("pale", dict(pale_size=7), 0),
    "CSWin (split_size 7)": ("cswin", dict(split_size=7), 0),
    "Axial (rows and columns)": ("axial", {}, 0),
    "CycleMLP": ("cyclemlp", {}, 0),
    "AS-MLP (shift_size 5)": ("asmlp", dict(shift_size=5), 0),
}
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "receptive_fields.png"


#: Shades below this log10 ratio to the largest gradient are white.
FLOOR = -6.0


def receptive_field(mixer: str, options: dict, block: int, size: int = 28,
                    token: Tuple[int, int] = (13, 13), channels: int = 16) -> np.ndarray:
    """``[size, size]``: log10 of each input's gradient over the largest (at least
    :data:`FLOOR`) for output ``token`` of the residual branches of block ``block`` of a
    ``miziha.MIXERS[mixer]`` layer."""
    paddle.seed(0)
    layer = miziha.MIXERS[mixer](channels, channels, **options)
    layer.eval()
    for name, param in layer.named_parameters():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight"):
            if not param.numpy().any():  # Swin V2's zero-initialised res-post-norm
                param.set_value(np.ones(param.shape, "float32"))
    x = paddle.randn([1, size * size, channels])
    x.stop_gradient = False
    out = layer.blocks[block](x, layer.layout(size, size)[block]) - x
    out.reshape([size, size, channels])[token[0], token[1]].sum().backward()
    grad = np.abs(x.grad.numpy()).sum(-1).reshape(size, size)
    return np.maximum(np.log10(grad / grad.max() + 1e-30), FLOOR)


def main(argv: List[str] = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="PNG file")
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = (len(PANELS) + 1) // 2
    figure, axes = plt.subplots(2, columns, figsize=(3 * columns, 6.6))
    axes = axes.ravel()
    for axis, (title, (mixer, options, block)) in zip(axes, PANELS.items()):
        shade = receptive_field(mixer, options, block)
        axis.imshow(shade, cmap="Blues", vmin=FLOOR, vmax=0.0)
        axis.plot(13, 13, marker="s", color="C3", markersize=4)
        strong = int((shade >= -2).sum())
        axis.set_title(f"{title}\n{strong} of {shade.size} inputs >= 1% of max", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=100)
    plt.close(figure)
    print(f"wrote {args.output}")
    return args.output


if __name__ == "__main__":
    main()
