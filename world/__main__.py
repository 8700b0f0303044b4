"""``python -m segzero_edge.world``: see ``cli.py``."""

import sys

from .cli import main

sys.exit(main())
