"""``python -m pez_nodes.cli``: the ``pez`` command run as a module (the same ``main`` as the console
script, for an environment whose ``bin/`` is not on PATH)."""

import sys

from .dispatch import main

sys.exit(main())
