"""What the tests, tools and benchmarks use to drive real hosts, and which the shipped package does not carry:
``chromium`` (the system's Chromium, headless, through Playwright), ``comfyui_page`` (ComfyUI's web page as a
user works it) and ``comfyui_server`` (a real ComfyUI started with this pack linked into ``custom_nodes/``).
Tests import them as ``harness.<module>`` (pytest puts ``tests/`` on ``sys.path``); ``tools/`` and
``benchmarks/`` add ``tests/`` to ``sys.path`` themselves.
"""
