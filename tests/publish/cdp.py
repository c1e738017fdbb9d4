"""A small Chrome DevTools protocol client for the browser tests: Debian's headless Chromium, no downloads.

Chromium is started with `--remote-debugging-port=0` (it picks a free port and writes it to
`DevToolsActivePort` in its profile folder); one page target is attached in flat mode over one websocket
(`websockets.sync`). Everything a page says on its console, every uncaught exception, every failed load and
every request that would leave the machine is collected per navigation, so a test can fail on any of them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> Path:
    """Debian's chromium, installed with apt-get when it is missing and we are root (a fresh CI machine)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=True, env=env, capture_output=True)
    if not CHROMIUM.exists():
        raise RuntimeError(f"apt-get install chromium did not provide {CHROMIUM}")
    return CHROMIUM


@dataclass
class PageLoad:
    """What one navigation showed: console errors, exceptions, failed loads, outside requests."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    failed_loads: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return ([f"console error: {m}" for m in self.console_errors] + [f"exception: {m}" for m in self.exceptions]
                + [f"failed to load: {m}" for m in self.failed_loads]
                + [f"request off the machine: {m}" for m in self.outside_requests])


class Browser:
    """One headless Chromium with one page; `with Browser(profile) as b: b.open(url)`."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900) -> None:
        self.profile = profile
        self.width, self.height = width, height
        self._id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        binary = ensure_chromium()
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self._log = (self.profile / "chromium.log").open("wb")
        self._proc = subprocess.Popen(
            [str(binary), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--metrics-recording-only", "--mute-audio",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"chromium did not start (see {self.profile / 'chromium.log'})")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self._ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        return self

    def __exit__(self, *exc: object) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()

    # ------------------------------------------------------------ the protocol

    def _call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
              timeout: float = 60) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        return self._call(method, params, self._session, timeout)

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._events.append(json.loads(self._ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
            except TimeoutError:
                return

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    # ------------------------------------------------------------ pages

    def open(self, url: str, ready: str = "true", timeout: float = 60) -> PageLoad:
        """Navigate, wait for the load event and for `ready` (a JS expression) to be true; collect the problems."""
        self._events.clear()
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: no load event in {timeout} s")
            self._drain(0.2)
        while not self.evaluate(f"Boolean({ready})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: not ready ({ready}) in {timeout} s")
            self._drain(0.2)
        self._drain(0.3)  # late console messages
        return self._page_load(url)

    def _page_load(self, url: str) -> PageLoad:
        load = PageLoad(url)
        for e in self._events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                load.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
            elif method == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                load.exceptions.append(d.get("exception", {}).get("description") or d.get("text", ""))
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                load.console_errors.append(f"{p['entry'].get('text')} ({p['entry'].get('url', '')})")
            elif method == "Network.loadingFailed":
                load.failed_loads.append(f"{p.get('errorText')} {p.get('requestId')}")
            elif method == "Network.requestWillBeSent":
                req = p["request"]["url"]
                if not req.startswith(("file:", "data:", "about:", "blob:")):
                    load.outside_requests.append(req)
        return load

    def screenshot(self, path: Path, max_height: int = 8000) -> Path:
        """The whole page (up to max_height pixels) as a PNG."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": max(self.width, int(size["width"])),
                "height": min(max_height, int(size["height"])), "scale": 1}
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
