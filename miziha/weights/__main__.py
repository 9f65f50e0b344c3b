"""``python -m miziha.weights``: see :mod:`miziha.weights.cli`."""

import sys

from .cli import main

sys.exit(main())
