"""A headless Chromium driven over the DevTools protocol (with aiohttp, which Ray brings), for
tests that must wait for a single-page app (MLflow's UI, Ray's dashboard) to render what they
look for, rather than for a fixed time."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

# Where browser tests keep their screenshots (CI keeps the folder).
ARTIFACTS = Path(os.environ.get("CCN_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str:
    """Debian's chromium, or skip (fail in CI, whose .ci/run installs it)."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """``with Browser(profile) as b: b.open(url, until=[...])`` loads ``url`` in one tab and
    waits until the page's visible text holds every string of ``until``."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--remote-debugging-port={self.port}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.loop = asyncio.new_event_loop()
        self.ws = self.session = None
        self.next_id = 0

    def __enter__(self) -> Browser:
        self.loop.run_until_complete(self._connect())
        return self

    def __exit__(self, *exc) -> None:
        self.loop.run_until_complete(self._close())
        self.loop.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)

    async def _connect(self) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession()
        deadline = time.monotonic() + 60
        while True:
            try:
                async with self.session.get(f"http://127.0.0.1:{self.port}/json/list") as r:
                    pages = [p for p in await r.json() if p.get("type") == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            await asyncio.sleep(0.25)
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)

    async def _close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()

    async def _call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method,
                                           "params": params}))  # fmt: skip
        while True:
            message = json.loads((await self.ws.receive()).data)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def call(self, method: str, **params):
        return self.loop.run_until_complete(self._call(method, **params))

    def evaluate(self, expression: str):
        """The value of a JavaScript expression on the open page; None while the page is
        navigating (as when a form reloads it)."""
        try:
            result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        except RuntimeError as e:
            if "navigated or closed" in str(e) or "context" in str(e).lower():
                return None
            raise
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def open(self, url: str, until: list[str], timeout: float = 90.0) -> str:
        """Load ``url``; return the page's text once it holds every string of ``until``."""
        self.call("Page.navigate", url=url)
        return self.open_again(until, timeout)

    def open_again(self, until: list[str], timeout: float = 90.0) -> str:
        """Wait, on the page already open, until its text holds every string of ``until``."""
        url = self.evaluate("location.href")
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            missing = [s for s in until if s not in text]
            if not missing:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}: still missing {missing} after {timeout:.0f} s; "
                                     f"the page shows:\n{text[:3000]}")  # fmt: skip
            time.sleep(0.5)

    def type_into(self, selector: str, text: str) -> None:
        """Focus the first element matching the CSS ``selector`` and type ``text`` into it, as
        a user's keyboard would (the page's own input handlers see it)."""
        found = self.call("Runtime.evaluate", returnByValue=True, expression=(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            "if (!e) return false; e.focus(); return true; })()"
        ))["result"].get("value")  # fmt: skip
        assert found, f"no element matches {selector}"
        self.call("Input.insertText", text=text)

    def click(self, selector: str, text: str | None = None) -> None:
        """Click, with the mouse as a user does (pressed and released at its centre, the
        events a page's own handlers see), the first element matching ``selector`` whose
        visible text is ``text`` (any, when None: an icon button), scrolled into view first."""
        wanted = json.dumps(text)
        found = self.call("Runtime.evaluate", returnByValue=True, expression=(
            f"(() => {{ const e = Array.from(document.querySelectorAll({json.dumps(selector)}))"
            f".find(e => {wanted} === null || e.innerText.trim() === {wanted}); "
            "if (!e) return null; e.scrollIntoView({block: 'center'}); "
            "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; "
            "})()"
        ))["result"].get("value")  # fmt: skip
        assert found, f"no {selector} reads {text!r}" if text is not None else selector
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=found[0], y=found[1])
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=found[0], y=found[1],
                      button="left", clickCount=1)  # fmt: skip

    def wait(self, expression: str, timeout: float = 90.0) -> None:
        """Wait until the JavaScript ``expression`` is true on the open page."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({expression})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"still not true after {timeout:.0f} s: {expression}")
            time.sleep(0.5)

    def scroll_to(self, text: str) -> None:
        """Scroll the first element whose text is ``text`` into view."""
        self.call("Runtime.evaluate", expression=(
            "(() => { const w = document.createTreeWalker(document.body, "
            "NodeFilter.SHOW_TEXT); while (w.nextNode()) { if (w.currentNode.textContent"
            f".trim() === {json.dumps(text)}) {{ w.currentNode.parentElement"
            ".scrollIntoView({block: 'center'}); return true; } } return false; })()"
        ))  # fmt: skip

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
