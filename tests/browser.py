"""Playwright on Debian's Chromium for the web UI's tests: the browser, a watched page (no console
error, no failed request, no request to another host), screenshots, and `headwater ui` as a
process of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(os.environ.get("HEADWATER_TEST_ARTIFACTS", "test-artifacts")) / "ui"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make test` installs Debian's chromium (scripts/ensure-chromium.sh)")
        pytest.skip("Chromium is not installed (apt-get install chromium): browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


class Watch:
    """What a page must never do: log an error, fail a request, or ask another host."""

    def __init__(self, page, allowed_status: tuple[int, ...] = ()) -> None:
        self.problems: list[str] = []
        self.allowed = allowed_status
        # URLs of another host that a vendored file hard-codes and the CSP must block (never sent)
        self.must_block: set[str] = set()
        self.blocked: set[str] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        page.on("requestfailed", self._failed)
        page.on("request", self._request)
        page.on("response", self._response)
        page.on("dialog", self._dialog)

    def _console(self, message) -> None:
        if any(url in message.text and "Content Security Policy" in message.text for url in self.must_block):
            return
        if message.type == "error" and not (self.allowed and "status of" in message.text):
            self.problems.append(f"console error: {message.text}")

    def _failed(self, request) -> None:
        # A request the browser dropped because the page moved on is not a failure of the page.
        if request.url in self.must_block and request.failure == "csp":
            self.blocked.add(request.url)
        elif request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.url} {request.failure}")

    def _request(self, request) -> None:
        if request.url.startswith(("data:", "blob:")):
            return
        if urlsplit(request.url).hostname != "127.0.0.1" and request.url not in self.must_block:
            self.problems.append(f"request to another host: {request.url}")

    def _response(self, response) -> None:
        if response.status >= 400 and response.status not in self.allowed:
            self.problems.append(f"{response.status} for {response.url}")

    def _dialog(self, dialog) -> None:
        self.problems.append(f"a dialog opened: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def page(browser, request) -> Iterator:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    tab = context.new_page()
    tab.watch = Watch(tab, getattr(request, "param", ()))
    yield tab
    context.close()
    assert tab.watch.problems == []


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def texts(page, selector: str, attribute: str) -> set[str]:
    return set(page.eval_on_selector_all(selector, f"els => els.map(e => e.getAttribute('{attribute}'))"))


def wait_graph(page) -> None:
    page.wait_for_selector("#graph[data-ready]")
    assert page.get_attribute("#graph", "data-ready") == "1", page.inner_text("#graph")


def graph_nodes(page) -> tuple[set[str], set[str]]:
    return texts(page, "#graph [data-ref]", "data-ref"), texts(page, "#graph [data-run]", "data-run")


class UIProcess:
    """`headwater ui --no-browser` in a subprocess, for the store `env` names."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "headwater.cli", "ui", "--no-browser", "--port", str(self.port)],
                env={**clean, "PYTHONUNBUFFERED": "1", **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"headwater ui did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
