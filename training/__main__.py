"""``python -m segzero_edge.training CONFIG [overrides]``: the entry point for ``accelerate launch -m``."""

import sys

from .cli import main

sys.exit(main())
