"""``python -m pez_nodes.client``: the ComfyUI client's documented name. Its code lives in
:mod:`pez_nodes.clients.comfyui`."""

import sys

from .clients.comfyui import main

if __name__ == "__main__":
    sys.exit(main())
