"""``python -m miziha.weights convert IN --model NAME -o OUT.pdparams [--window-size W]
[--num-classes K] [--option KEY=VALUE ...] [--source S]``: any checkpoint
:func:`~miziha.weights.load_pretrained` reads, as a Paddle file of the network's state
dict; prints the load report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional, Tuple

from .load import convert_file
from .convert import SOURCES

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m miziha.weights",
                                     description="Pretrained weights into miziha networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="a checkpoint to a .pdparams file")
    convert.add_argument("input", help="a .pth / .pth.tar / .pt, .safetensors or .pdparams")
    convert.add_argument("--model", required=True, help="a name of miziha.list_models()")
    convert.add_argument("-o", "--output", required=True, help="the .pdparams to write")
    convert.add_argument("--window-size", type=int, help="the model's window (tables resized)")
    convert.add_argument("--num-classes", type=int,
                         help="the model's classes (another count leaves the head at its "
                              "initialisation)")
    convert.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                         help="another option of the model (VALUE read as JSON, else as a "
                              "string), e.g. --option depths=[2,2,18,2]; repeatable")
    convert.add_argument("--source", choices=sorted(SOURCES),
                         help="whose names the file has (default: detected)")
    return parser


def _option(text: str) -> Tuple[str, Any]:
    """``KEY=VALUE`` -> (key, JSON value, or the string when it is not JSON)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status (2 with a message on bad input)."""
    args = _parser().parse_args(argv)
    try:
        options = dict(_option(text) for text in args.option)
        options.update({k: v for k, v in (("window_size", args.window_size),
                                          ("num_classes", args.num_classes)) if v is not None})
        _, report = convert_file(args.input, args.model, args.output, source=args.source,
                                 **options)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report)
    print(f"wrote {args.output}")
    return 0
