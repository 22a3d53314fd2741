"""``python -m pez_nodes.webui.client``: the webui client's documented name. Its code lives in
:mod:`pez_nodes.clients.webui`."""

import sys

from ..clients.webui import main

if __name__ == "__main__":
    sys.exit(main())
