"""Standard-library clients of a running host: ``comfyui`` (run a PEZ workflow on ComfyUI) and ``webui`` (the PEZ
routes of AUTOMATIC1111 / Forge), with what both share in ``common``. They import neither torch nor the core, so
they run on any Python 3.

Their documented commands, ``python -m pez_nodes.client`` and ``python -m pez_nodes.webui.client``, are two small
alias modules that call ``main`` here.
"""
