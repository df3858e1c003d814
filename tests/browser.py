"""Open a page in headless Chromium over the DevTools protocol: console errors, image loads, screenshot.

No browser download: Debian's /usr/bin/chromium, driven with the `websockets` client already in the
environment. The flags keep Chromium off this machine's closed network.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1200,900",
]
IMAGES_OK = (
    "Array.from(document.images).map(i => ({src: i.src.slice(0, 40), ok: i.complete && i.naturalWidth > 0}))"
)
# every link: its raw href and, for an in-page anchor, whether an element with that id exists
LINKS = (
    "Array.from(document.querySelectorAll('a[href]')).map(a => {const h = a.getAttribute('href');"
    " return {href: h, url: a.href, anchor_ok: h.startsWith('#') ? "
    "document.getElementById(decodeURIComponent(h.slice(1))) !== null : null};})"
)


def broken_links(seen: dict) -> list[str]:
    """In-page anchors without a target, and file links whose file does not exist."""
    from urllib.parse import unquote, urlparse

    broken = []
    for link in seen["links"]:
        if link["anchor_ok"] is False:
            broken.append(link["href"])
        elif link["anchor_ok"] is None:
            url = urlparse(link["url"])
            if url.scheme == "file" and not Path(unquote(url.path)).exists():
                broken.append(link["href"])
            elif url.scheme not in ("file", "http", "https", "mailto"):
                broken.append(link["href"])
    return broken


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inspect_page(path: Path, screenshot: Path, timeout: float = 30.0) -> dict:
    """Load `path`; return console errors, per-image load status, and save a PNG screenshot."""
    from websockets.sync.client import connect

    port = _free_port()
    profile = tempfile.mkdtemp(prefix="chromium-")
    proc = subprocess.Popen(
        [chromium(), *FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    targets = [t for t in json.load(r) if t["type"] == "page"]
                if targets:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.2)
        with connect(targets[0]["webSocketDebuggerUrl"], max_size=None) as ws:
            ids = iter(range(1, 10_000))
            errors: list[str] = []

            def call(method: str, **params) -> dict:
                msg_id = next(ids)
                ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
                while True:
                    msg = json.loads(ws.recv(timeout=timeout))
                    if msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] in (
                        "error",
                        "assert",
                    ):
                        errors.append(str(msg["params"]["args"]))
                    elif msg.get("method") == "Runtime.exceptionThrown":
                        errors.append(msg["params"]["exceptionDetails"].get("text", "exception"))
                    elif msg.get("method") == "Log.entryAdded" and msg["params"]["entry"]["level"] == "error":
                        errors.append(msg["params"]["entry"]["text"])
                    elif msg.get("id") == msg_id:
                        return msg.get("result", {})

            call("Runtime.enable")
            call("Log.enable")
            call("Page.enable")
            call("Page.navigate", url=path.resolve().as_uri())
            state = ""
            while state != "complete" and time.time() < deadline:
                state = call("Runtime.evaluate", expression="document.readyState")["result"]["value"]
                time.sleep(0.1)
            images = call("Runtime.evaluate", expression=IMAGES_OK, returnByValue=True)["result"]["value"]
            shot = call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            title = call("Runtime.evaluate", expression="document.title")["result"]["value"]
            links = call("Runtime.evaluate", expression=LINKS, returnByValue=True)["result"]["value"]
            return {"errors": errors, "images": images, "title": title, "ready": state, "links": links}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
