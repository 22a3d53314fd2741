"""Headless PEZ on a running AUTOMATIC1111 / Forge webui (the sibling of ``python -m pez_nodes.client``).

    python -m pez_nodes.webui.client --webui http://127.0.0.1:7860 invert photo.png [more.png ...]
    python -m pez_nodes.webui.client --webui http://127.0.0.1:7860 distill "a long prompt ..." --set prompt_len=8
    python -m pez_nodes.webui.client --webui http://127.0.0.1:7860 concat "first prompt" "second prompt" --json

Posts to the extension's ``/pez/v1/<kind>`` route (images sent as base64), shows the live best prompt from
``/sdapi/v1/progress`` on stderr, and prints the learned prompt. ``--set KEY=VALUE`` sets any ``PEZConfig``
field (or ``model`` / ``pretrained``); ``--auth USER:PASS`` (or ``PEZ_WEBUI_AUTH``) for a webui started with
``--api-auth``. On ``--timeout`` or Ctrl-C only a PEZ run is interrupted, never another job. Exit status: 0 success; 1 the run did not finish within ``--timeout``
(it is interrupted on the webui and its best prompt so far printed); 2 bad input or no webui (one line on
stderr); 130 Ctrl-C (interrupted on the webui too). Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .common import ClientError, Progress, check_image


HEADERS = {"Content-Type": "application/json"}  # + Authorization with --auth


def call(base: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
    """POST ``body`` (or GET when None) to the webui; a ClientError with its one-line message on a 4xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers=HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            message = json.loads(text).get("error") or json.loads(text).get("detail") or text
        except (json.JSONDecodeError, AttributeError):
            message = text
        if e.code == 404 and path.startswith("/pez/"):
            message = ("the webui has no PEZ routes: start it with --api, with this repository installed as an "
                       "extension")
        if e.code == 401:
            message = "the webui wants its --api-auth user and password: give --auth USER:PASS"
        raise ClientError(f"{e.code}: {str(message).splitlines()[0] if message else e.reason}") from None
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        raise ClientError(f"no webui at {base} ({getattr(e, 'reason', e)}); start it with --api") from None


def set_auth(auth: str | None) -> None:
    """``USER:PASS`` (the webui's ``--api-auth``) as HTTP basic auth on every call."""
    HEADERS.pop("Authorization", None)
    if auth:
        if ":" not in auth:
            raise ClientError("--auth must be USER:PASS, as the webui's --api-auth")
        HEADERS["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()


def interrupt_pez(base: str) -> bool:
    """Interrupt the webui's current job if it is a PEZ run (a queued request must not stop someone else's)."""
    try:
        if (call(base, "/sdapi/v1/progress?skip_current_image=true", timeout=5).get("state") or {}).get("job") == "pez":
            call(base, "/sdapi/v1/interrupt", {}, timeout=5)
            return True
    except ClientError:
        pass
    return False


def request_of(kind: str, sources: list[str], sets: list[str]) -> dict:
    if kind == "invert":
        for s in sources:
            check_image(Path(s))
        body: dict = {"images": [base64.b64encode(Path(s).read_bytes()).decode() for s in sources]}
    elif kind == "distill":
        if len(sources) != 1:
            raise ClientError("distill takes one text (quote it)")
        body = {"text": sources[0]}
    else:
        body = {"texts": sources}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ClientError(f"--set {item!r}: write KEY=VALUE, e.g. --set steps=300")
        try:
            body[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            body[key.strip()] = value
    return body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pez_nodes.webui.client", description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=("invert", "distill", "concat"))
    ap.add_argument("sources", nargs="+", help="invert: image files; distill: one text; concat: two or more texts")
    ap.add_argument("--webui", default="http://127.0.0.1:7860", help="the webui's address (default: %(default)s)")
    ap.add_argument("--model", default=None, help="CLIP: toy (default), a file in models/open_clip, an open_clip name")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a PEZConfig field (repeatable)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds for the whole run (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the route's JSON answer")
    ap.add_argument("--auth", default=os.environ.get("PEZ_WEBUI_AUTH"), metavar="USER:PASS",
                    help="the webui's --api-auth credentials (default: $PEZ_WEBUI_AUTH)")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    base = args.webui.rstrip("/")
    base = base if base.startswith(("http://", "https://")) else f"http://{base}"
    progress = Progress(args.quiet)
    try:
        set_auth(args.auth)
        body = request_of(args.kind, args.sources, args.set)
        if args.model:
            body["model"] = args.model
        call(base, "/sdapi/v1/progress?skip_current_image=true")  # is the webui there?
    except ClientError as e:
        print(f"pez-webui-client: error: {e}", file=sys.stderr)
        return 2
    out: dict = {}

    def work():
        try:
            out["result"] = call(base, f"/pez/v1/{args.kind}", body, timeout=args.timeout + 60)
        except ClientError as e:
            out["error"] = e

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    deadline, code, stopped = time.monotonic() + args.timeout, 0, False
    try:
        while worker.is_alive():
            worker.join(0.5)
            if time.monotonic() > deadline and not stopped:
                code, stopped = 1, interrupt_pez(base)
            try:
                info = call(base, "/sdapi/v1/progress?skip_current_image=true", timeout=5).get("textinfo")
            except ClientError:
                info = None
            if info and info.startswith("PEZ"):
                progress.show(info)
    except KeyboardInterrupt:
        interrupt_pez(base)
        worker.join(30)
        progress.end()
        print("pez-webui-client: interrupted", file=sys.stderr)
        if "result" in out:
            print(out["result"]["prompt"])
        return 130
    progress.end()
    if "error" in out:
        print(f"pez-webui-client: error: {out['error']}", file=sys.stderr)
        return 2
    result = out["result"]
    print(json.dumps(result) if args.json else result["prompt"])
    if code:
        print(f"pez-webui-client: the run did not finish within {args.timeout:g} s; interrupted, best prompt so far "
              "printed", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
