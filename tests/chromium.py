"""A real headless Chromium driven through chromedriver's W3C WebDriver HTTP API (urllib only,
no new dependency), for tests of the HTML report.

`test.sh` installs Debian's `chromium` and `chromium-driver` when they are missing and apt
can; `available()` says why not otherwise, and the browser tests skip with that reason, or fail
with it under `UAD_REQUIRE_BROWSER=1` (what CI sets: `.ci/run`), so a machine that should test
the page in a browser cannot pass by skipping it.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]
REQUIRE = "UAD_REQUIRE_BROWSER"  # =1: a missing browser fails the browser tests instead of skipping them
KEYS = {"right": "\ue014", "left": "\ue012", "end": "\ue010", "home": "\ue011"}


def binaries() -> tuple[str | None, str | None]:
    return (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome"),
            shutil.which("chromedriver"))


def available() -> str | None:
    """None when a browser and its driver are installed, else the reason (for pytest.skip)."""
    browser, driver = binaries()
    if browser and driver:
        return None
    missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
    return (f"{missing} not installed and not installable here (test.sh runs "
            "`apt-get install -y chromium chromium-driver` when apt is available)")


def require_or_skip() -> None:
    """Skip the calling test with `available()`'s reason, or fail it with that reason under `UAD_REQUIRE_BROWSER=1`."""
    import pytest

    reason = available()
    if reason is None:
        return
    if os.environ.get(REQUIRE, "") == "1":
        pytest.fail(f"{REQUIRE}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Browser:
    """One chromedriver process and one browser session (a context manager)."""

    def __init__(self, timeout: float = 30.0) -> None:
        browser, driver = binaries()
        if not (browser and driver):
            raise RuntimeError(available())
        self.port = _free_port()
        self.profile = tempfile.mkdtemp(prefix="uad-chromium-")
        self.driver = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.timeout = timeout
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or self.driver.poll() is not None:
                    self.close()
                    raise RuntimeError("chromedriver did not start") from None
                time.sleep(0.1)
        options = {"binary": browser, "args": [*FLAGS, f"--user-data-dir={self.profile}"]}
        capabilities = {"browserName": "chrome", "goog:chromeOptions": options, "goog:loggingPrefs": {"browser": "ALL"}}
        try:
            self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]
        except Exception:
            self.close()
            raise

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}").get("value")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webdriver {method} {path}: {exc.read().decode(errors='replace')[:500]}") from None

    def _session(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, path: Path) -> None:
        self._session("POST", "/url", {"url": Path(path).resolve().as_uri()})

    def run(self, script: str, *args: Any) -> Any:
        """Run `script` (a function body; `arguments` holds `args`) in the page; its return value."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_for(self, script: str, timeout: float = 20.0) -> Any:
        """Poll `script` until it returns a truthy value; return it."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.run(script)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied: {script}")
            time.sleep(0.1)

    def element(self, css: str) -> str:
        return self._session("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def press(self, css: str, key: str, times: int = 1) -> None:
        """Real key presses on the element matched by `css` (e.g. a slider)."""
        self._session("POST", f"/element/{self.element(css)}/value", {"text": KEYS[key] * times})

    def click(self, css: str) -> None:
        self._session("POST", f"/element/{self.element(css)}/click", {})

    def console(self) -> list[dict[str, Any]]:
        """Browser log entries since the last call (console messages, uncaught errors, CSP violations)."""
        return self._session("POST", "/se/log", {"type": "browser"})

    def screenshot(self, path: Path) -> None:
        import base64

        Path(path).write_bytes(base64.b64decode(self._session("GET", "/screenshot")))

    def close(self) -> None:
        try:
            if getattr(self, "session", None):
                self._session("DELETE", "")
        except Exception:  # noqa: BLE001 - closing a broken session: the process is ended below
            pass
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
