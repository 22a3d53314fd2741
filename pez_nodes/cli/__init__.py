"""``pez``: the command line front end over ``pez_nodes.core``, one module per job.

``main`` (``dispatch.py``: the parser and the dispatch) is the console script ``pez = "pez_nodes.cli:main"`` and
``python -m pez_nodes.cli``; importing this package loads no torch (each command imports what it
needs when it runs).
"""

from .dispatch import main

__all__ = ["main"]
