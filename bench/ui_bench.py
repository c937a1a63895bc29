#!/usr/bin/env python
"""The web UI in headless Chromium: how fast the lineage page draws, and the artifact list at scale.

    python bench/ui_bench.py [--tiny] [--repeat N] [--artifacts N] [--json FILE]

Graphs: one pipeline of 25 jobs (5 layers of 5, each job reading two of the layer before, the
first layer reading one raw dataset) run on D days; every run produces a new version of its
job's artifact. The lineage page asks for everything downstream of the raw dataset's version,
so the graph holds 50 nodes a day: 2 days = 100 nodes, 10 days = 500, 100 days = 5,000 (which
the page collapses by artifact and job: 51 nodes drawn). Measured per size, medians of N loads:

- first render: from navigation start to the graph drawn (HTML, JS, the graph's JSON, layout
  and SVG), as `performance.now()` reads it in the page when `#graph[data-ready]` is set;
- layout / draw: the page's own split of that work (dagre's layout, building the SVG);
- click: a click on a node until its details panel shows (the page answering input);
- interactive: first render + click; for "every node drawn", from unticking Collapse to the
  graph redrawn with every node.

Targets from the issue: a 500-node graph interactive within 1 s; a 5,000-node one usable
(collapsed). The artifact list is timed on a store of N artifacts (100,000 by default): the
first and the last page, by last update, from the request to the HTML received.
The store is SQLite; `headwater ui` serves it on loopback; Chromium is Debian's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

from headwater.digest import manifest_digest
from headwater.events import EdgeRecorded, RunRecorded, VersionRecorded
from headwater.models import ManifestEntry
from headwater.store.sql import SQLStore

LAYERS, WIDTH = 5, 5
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _digest(*parts: object) -> str:
    return "blake3:" + hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=32).hexdigest()


def _version(name: str, day: int, run_id: str, direction: str) -> VersionRecorded:
    entry = ManifestEntry(path="part-0.parquet", digest=_digest("file", name, day), size=1024 + day)
    return VersionRecorded(
        name=name,
        digest=manifest_digest([entry]),
        entries=[entry],
        run_id=run_id,
        direction=direction,  # type: ignore[arg-type]
        type="model" if name.startswith("l4") else "dataset",
        time=START + timedelta(days=day),
    )


def build_pipeline(store: SQLStore, days: int) -> str:
    """The pipeline above on `days` days; returns the REF the page is opened at."""
    for day in range(days):
        events: list = []
        when = START + timedelta(days=day)
        for layer in range(LAYERS):
            for slot in range(WIDTH):
                job = f"l{layer}j{slot}"
                run_id = str(hashlib.md5(f"{job}/{day}".encode()).hexdigest())
                events.append(
                    RunRecorded(
                        run_id=run_id,
                        job=job,
                        job_namespace="bench",
                        orchestrator=("airflow", "dagster", "prefect")[layer % 3],
                        run_kind="task",
                        status="succeeded",
                        started_at=when,
                        ended_at=when,
                        time=when,
                    )
                )
                if layer == 0:
                    events.append(EdgeRecorded(run_id=run_id, ref="raw:v0", direction="used", time=when))
                else:
                    for parent in (slot, (slot + 1) % WIDTH):
                        events.append(EdgeRecorded(run_id=run_id, ref=f"l{layer - 1}j{parent}:v{day}", time=when))
                events.append(_version(job, day, run_id, "produced"))
        if day == 0:
            seed = "0" * 32
            store.apply(
                [
                    RunRecorded(
                        run_id=seed,
                        job="export",
                        job_namespace="bench",
                        orchestrator="manual",
                        run_kind="manual",
                        status="succeeded",
                        started_at=when,
                        ended_at=when,
                        time=when,
                    ),
                    _version("raw", 0, seed, "produced"),
                ]
            )
        store.apply(events)
    return "raw:v0"


def build_artifacts(store: SQLStore, count: int) -> None:
    run = "1" * 32
    store.apply([RunRecorded(run_id=run, job="many", orchestrator="manual", run_kind="manual", status="succeeded")])
    batch: list = []
    for i in range(count):
        batch.append(_version(f"artifact-{i:06d}", i, run, "produced"))
        if len(batch) == 2000:
            store.apply(batch)
            batch = []
    if batch:
        store.apply(batch)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class UI:
    """`headwater ui` over one SQLite store, on loopback."""

    def __init__(self, db: Path, folder: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        env.update(HEADWATER_URI=f"sqlite:///{db}", HEADWATER_HOME=str(folder / "home"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "headwater.cli", "ui", "--no-browser", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("headwater ui did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def measure_graph(page, url: str) -> dict[str, float]:
    page.goto(url, wait_until="commit")
    page.wait_for_selector("#graph[data-ready]", timeout=120_000)
    first = page.evaluate("performance.now()")
    stats = page.evaluate("({...window.headwaterGraph})")
    node = page.locator("#graph .node").nth(0)
    started = time.perf_counter()
    node.click()
    page.wait_for_selector("#details:not([hidden])")
    click = (time.perf_counter() - started) * 1000
    return {
        "first": first,
        "layout": stats["layoutMs"],
        "draw": stats["renderMs"],
        "click": click,
        "interactive": first + click,
        "drawn": stats["nodes"],
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="100 nodes and 1,000 artifacts, one load each (the smoke test)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--artifacts", type=int, default=100_000)
    parser.add_argument(
        "--days", help="pipeline days to draw, comma-separated (default 2,10,100: 100, 500, 5,000 nodes)"
    )
    parser.add_argument("--json", help="write the raw timings here")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("Chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    sizes = [2] if args.tiny else [int(d) for d in (args.days or "2,10,100").split(",")]
    repeat = 1 if args.tiny else args.repeat
    artifacts = 1000 if args.tiny else args.artifacts
    from playwright.sync_api import sync_playwright

    rows: list[dict] = []
    uncollapsed: dict | None = None
    with tempfile.TemporaryDirectory(prefix="hw-ui-bench-") as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for days in sizes:
            folder = Path(tmp, f"days-{days}")
            folder.mkdir()
            store = SQLStore(f"sqlite:///{folder / 'hw.db'}")
            ref = build_pipeline(store, days)
            store.close()
            ui = UI(folder / "hw.db", folder)
            try:
                url = f"{ui.url}/ui/lineage?ref={ref}&direction=downstream&depth=all"
                measure_graph(page, url)  # warm: the server's first query, the browser's cache
                runs = []
                for i in range(repeat):
                    runs.append(measure_graph(page, url))
                    print(f"  {days * 50} nodes, load {i + 1}: {runs[-1]['first']:.0f} ms", file=sys.stderr)
                if page.is_checked("#collapse"):  # and once with every node drawn (the user's choice)
                    started = time.perf_counter()
                    page.uncheck("#collapse")
                    page.locator("#graph [data-ref]").nth(days * 25).wait_for()
                    whole = page.evaluate("({...window.headwaterGraph})")
                    uncollapsed = {
                        "what": f"lineage, {days * 50} nodes, every node drawn",
                        "first": None,
                        "layout": whole["layoutMs"],
                        "draw": whole["renderMs"],
                        "drawn": whole["nodes"],
                        "click": None,
                        "interactive": (time.perf_counter() - started) * 1000,
                    }
            finally:
                ui.stop()
            row = {"what": f"lineage, {days * 50} nodes", **{k: median([r[k] for r in runs]) for k in runs[0]}}
            rows.append(row)
            if uncollapsed:
                rows.append(uncollapsed)
                uncollapsed = None

        folder = Path(tmp, "artifacts")
        folder.mkdir()
        store = SQLStore(f"sqlite:///{folder / 'hw.db'}")
        started = time.perf_counter()
        build_artifacts(store, artifacts)
        print(f"  {artifacts} artifacts written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        store.close()
        ui = UI(folder / "hw.db", folder)
        try:
            last = (artifacts - 1) // 50 + 1
            for label, path in (("first page", "/"), ("last page", f"/?page={last}"), ("search", "/?q=artifact-0999")):
                times = []
                for _ in range(repeat + 1):
                    started = time.perf_counter()
                    with urllib.request.urlopen(ui.url + path, timeout=120) as answer:
                        answer.read()
                    times.append((time.perf_counter() - started) * 1000)
                rows.append({"what": f"artifacts list, {artifacts:,} artifacts, {label}", "first": median(times[1:])})
        finally:
            ui.stop()
        browser.close()

    print(
        f"{'what':<53} {'first render':>13} {'layout':>8} {'draw':>8} {'click':>8} {'interactive':>12} "
        f"{'drawn':>6} {'target':>8} {'ratio':>6}"
    )
    for row in rows:
        target = 1000.0 if "500 nodes" in row["what"] else None
        if "lineage" in row["what"]:
            ratio = f"{target / row['interactive']:.1f}" if target else "-"
            ms = lambda v: "-" if v is None else f"{v:.0f} ms"  # noqa: E731
            print(
                f"{row['what']:<53} {ms(row['first']):>13} {ms(row['layout']):>8} {ms(row['draw']):>8} "
                f"{ms(row['click']):>8} {ms(row['interactive']):>12} {row['drawn']:>6.0f} "
                f"{'1000 ms' if target else '-':>8} {ratio:>6}"
            )
        else:
            print(f"{row['what']:<53} {row['first']:>10.0f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
