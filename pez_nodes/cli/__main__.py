"""``python -m pez_nodes.cli``: the ``pez`` command, run as a module."""

import sys

from .main import main

sys.exit(main())
