"""The system's Chromium, headless, driven by Playwright for Python — for the browser tests of every host
(ComfyUI's frontend, the webuis' PEZ tab) and the workflow screenshots.

Playwright is imported only here, when a page is opened, and never downloads a browser: it drives Debian's
``chromium`` package (or ``$CHROMIUM``).
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

# Chromium as the machines here run it headless: no sandbox as root, no GPU, and nothing that reaches
# for Google's services (a closed network refuses those connections, many at a time).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    """``$CHROMIUM``, else the first of chromium / chromium-browser / google-chrome on PATH."""
    found = os.environ.get("CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    return found if found and Path(found).exists() else None


def why_no_browser() -> str | None:
    """None when a browser test can run here, else why not (for a skip reason)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        return "no Chromium found (apt-get install chromium, or set CHROMIUM to its path)"
    return None


@contextmanager
def chromium_page(url: str, viewport: dict, chromium: str | None = None, timeout_s: float = 120):
    """A new headless Chromium with one page open at ``url``; closed on exit."""
    from playwright.sync_api import sync_playwright

    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError(why_no_browser())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport=viewport)
            page.goto(url, timeout=timeout_s * 1000)
            yield page
        finally:
            browser.close()
