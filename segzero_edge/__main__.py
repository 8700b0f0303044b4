"""``python -m segzero_edge`` is ``segzero-edge``."""

import sys

from .cli import main

sys.exit(main())
