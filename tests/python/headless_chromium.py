"""Debian's chromium, headless, driven over the DevTools protocol on a pipe.

Why not `chromium --headless --dump-dom URL`: the live page derives its charts from deltas
between scrapes taken 2 s apart in real time. --dump-dom alone dumps right after the load
event (one scrape, no chart points), and --timeout does not hold it longer. With
--virtual-time-budget the page's 2 s timers fire on a virtual clock (Date.now() is
virtual too) while the fetches run in real time, so ten "2 s" polls happen within a
fraction of a real second: the counters barely move between them and every rate comes
out near zero. Driving the browser over --remote-debugging-pipe instead lets the test wait
in real time for as many real polls as it wants, then read the live DOM and capture a
screenshot of the same page. The protocol is JSON messages separated by NUL bytes on
fds 3 (to the browser) and 4 (from it); only the standard library is needed.
"""

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time


def find_chromium():
    """The chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevToolsError(RuntimeError):
    pass


class HeadlessChromium:
    """One headless browser with one page. Use as a context manager; it always exits."""

    def __init__(self, binary, width=1400, height=1800, log_path=os.devnull):
        self._profile = tempfile.mkdtemp(prefix="gemserve-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
                "--user-data-dir=" + self._profile, f"--window-size={width},{height}",
                "about:blank"]
        # The protocol wants the pipes on fds 3 and 4 exactly; bash puts them there (dash
        # takes single-digit fds only).
        shim = f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self._log = open(log_path, "wb")
        self._process = subprocess.Popen(["bash", "-c", shim, "bash", *args],
                                         pass_fds=(to_browser_r, from_browser_w),
                                         stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._to_browser = to_browser_w
        self._from_browser = from_browser_r
        self._buffer = b""
        self._next_id = 0
        self._session = None
        self._width, self._height = width, height

    def __enter__(self):
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self.call("Target.attachToTarget",
                                      {"targetId": target, "flatten": True})["sessionId"]
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": self._width, "height": self._height,
                       "deviceScaleFactor": 1, "mobile": False}, page=True)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ protocol

    def call(self, method, params=None, page=False, timeout=30):
        """Sends one command (to the page's session when page=True); returns its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self._session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") != self._next_id:
                continue  # an event, or a reply nobody waits for any more
            if "error" in reply:
                raise DevToolsError(f"{method}: {reply['error']}")
            return reply.get("result", {})

    def _read(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DevToolsError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise DevToolsError("chromium closed the pipe (exit code "
                                        f"{self._process.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    # ------------------------------------------------------------------ page

    def open(self, url):
        result = self.call("Page.navigate", {"url": url}, page=True)
        if result.get("errorText"):
            raise DevToolsError(f"cannot open {url}: {result['errorText']}")

    def evaluate(self, expression):
        """The JSON value of a JS expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate",
                           {"expression": expression, "returnByValue": True,
                            "awaitPromise": True}, page=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression[:60]}…: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path):
        """A PNG of the page, its full height (the width stays the window's)."""
        height = self.evaluate("document.documentElement.scrollHeight")
        clip = {"x": 0, "y": 0, "width": self._width, "height": max(self._height, height),
                "scale": 1}
        data = self.call("Page.captureScreenshot",
                         {"format": "png", "clip": clip, "captureBeyondViewport": True},
                         page=True)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    # ------------------------------------------------------------------ shutdown

    def close(self):
        if self._process.poll() is None:
            try:
                self.call("Browser.close", timeout=5)
            except (DevToolsError, OSError):
                pass
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)
