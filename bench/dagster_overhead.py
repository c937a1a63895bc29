#!/usr/bin/env python
"""What HeadwaterIOManager adds per output, against the wrapped IO manager alone, in one run.

    python bench/dagster_overhead.py [--outputs N] [--sizes 1024,1048576] [--postgres URL] [--background]

One Dagster run (one op with N outputs per size, in-process executor) whose outputs alternate
between two IO managers: FilesystemIOManager alone ("plain") and HeadwaterIOManager wrapping the
same FilesystemIOManager ("headwater"). A thin timing shim around each measures handle_output.
headwater's core is timed by part during the same calls (Client.content hashes, Client.emit
writes the outbox and delivers, Client.get reads the label), so "beyond hash" = headwater -
plain - hash (medians), and "adapter itself" is what remains after the core's parts.
Needs the dagster extra: `nox -s dagster` makes such an environment (.nox/dagster).
Target (issue 5): under 5 ms per output beyond hashing it (issue 17: 2 ms). With --background, a
second SQLite run (`sqlite-bg`) with HEADWATER_DELIVERY=background: each batch made durable in the
outbox and handed to a deliverer process (no core emit, no label read: the metadata keeps the
digest), the deliverer waited for before the artifacts are counted.

Columns (medians per output): plain / headwater = handle_output; overhead = their difference;
hash = hashing the stored file; beyond hash = overhead - hash (the target); core emit = the
batch through headwater.observe (outbox write with its fsyncs, then delivery); label read = the
`name:vN` lookup for the output metadata; adapter itself = beyond hash - emit - label.
"""

# No `from __future__ import annotations`: Dagster reads the annotations below.
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
from dagster import ConfigurableIOManager, IOManager, ResourceDependency

import headwater as hw
from headwater.adapters.dagster import HeadwaterIOManager

TIMES: dict[str, list[float]] = {}
# Time spent inside headwater's core during the run, by part (bench only: Client methods wrapped).
CORE = {"content": 0.0, "emit": 0.0, "get": 0.0}


def _timed_core(name: str) -> None:
    original = getattr(hw.Client, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            CORE[name] += time.perf_counter() - started

    setattr(hw.Client, name, wrapper)


for _name in CORE:
    _timed_core(_name)


class Timed(ConfigurableIOManager):
    inner: ResourceDependency[IOManager]
    label: str

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        before = dict(CORE)
        started = time.perf_counter()
        self.inner.handle_output(context, obj)
        TIMES.setdefault(self.label, []).append(time.perf_counter() - started)
        for part, total in CORE.items():
            TIMES.setdefault(f"{self.label}/{part}", []).append(total - before[part])

    def load_input(self, context: dg.InputContext) -> Any:
        return self.inner.load_input(context)


def build_job(n: int, sizes: list[int], storage: Path) -> dg.JobDefinition:
    outs = {}
    for size in sizes:
        for i in range(n):
            for side in ("plain", "headwater"):
                outs[f"{side}_{size}_{i}"] = dg.Out(io_manager_key=f"{side}_{size}")

    @dg.op(out=outs)
    def many():
        for name in outs:
            size = int(name.split("_")[1])
            i = int(name.split("_")[2])
            yield dg.Output(os.urandom(size - 64) + i.to_bytes(64, "big"), name)

    fs = dg.FilesystemIOManager(base_dir=str(storage))
    resources = {}
    for size in sizes:
        resources[f"plain_{size}"] = Timed(inner=fs, label=f"plain_{size}")
        resources[f"headwater_{size}"] = Timed(inner=HeadwaterIOManager(inner=fs), label=f"headwater_{size}")

    @dg.job(resource_defs=resources, executor_def=dg.in_process_executor)
    def overhead() -> None:
        many()

    return overhead


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def measure(
    backend: str, uri: str, n: int, sizes: list[int], work: Path, background: bool = False
) -> list[tuple[str, ...]]:
    TIMES.clear()
    os.environ["HEADWATER_URI"] = uri
    os.environ["HEADWATER_HOME"] = str(work / f"home-{backend}")
    if background:
        os.environ["HEADWATER_DELIVERY"] = "background"
    job = build_job(n, sizes, work / f"storage-{backend}")
    started = time.perf_counter()
    try:
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    finally:
        os.environ.pop("HEADWATER_DELIVERY", None)
    elapsed = time.perf_counter() - started
    assert result.success
    client = hw.Client()
    if background:
        from headwater.deliverer import wait_delivered

        assert wait_delivered(client), "the deliverer did not deliver the outbox"
    rows = []
    for size in sizes:
        plain = statistics.median(TIMES[f"plain_{size}"])
        tracked = statistics.median(TIMES[f"headwater_{size}"])
        side = f"headwater_{size}"
        hashed, emit, label = (statistics.median(TIMES[f"{side}/{part}"]) for part in ("content", "emit", "get"))
        beyond = tracked - plain - hashed
        rows.append(
            (
                backend,
                f"{size:,} B",
                str(len(TIMES[f"plain_{size}"])),
                ms(plain),
                ms(tracked),
                ms(tracked - plain),
                ms(hashed),
                ms(beyond),
                ms(emit),
                ms(label),
                ms(beyond - emit - label),
                "yes" if beyond < 0.005 else "NO",
            )
        )
    n_versions = len(client.artifacts(limit=None))
    print(
        f"[{backend}] one run, {len(sizes) * n * 2} outputs in {elapsed:.1f} s; {n_versions} artifacts recorded",
        file=sys.stderr,
    )
    client.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=int, default=100, help="outputs per size and side")
    parser.add_argument("--sizes", default="1024,1048576", help="bytes per output, comma-separated")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("HEADWATER_TEST_POSTGRES_URL"),
        help="also measure against this PostgreSQL (a database of its own is made)",
    )
    parser.add_argument("--background", action="store_true", help="also SQLite with background delivery")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="hw-dagster-bench-") as tmp:
        work = Path(tmp)
        rows += measure("sqlite", f"sqlite:///{work / 'bench.db'}", args.outputs, sizes, work)
        if args.background:
            rows += measure("sqlite-bg", f"sqlite:///{work / 'bench-bg.db'}", args.outputs, sizes, work, True)
        if args.postgres:
            import uuid

            import sqlalchemy as sa

            name = f"headwater_bench_{uuid.uuid4().hex[:8]}"
            admin_url = sa.make_url(args.postgres).set(drivername="postgresql+psycopg")
            admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            except sa.exc.OperationalError as err:
                print(f"PostgreSQL skipped: {str(err.orig).strip().splitlines()[0]}", file=sys.stderr)
            else:
                try:
                    url = sa.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
                    rows += measure("postgresql", url, args.outputs, sizes, work)
                finally:
                    hw.api.default_client().close()
                    with admin.connect() as conn:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    header = (
        "backend",
        "output",
        "n",
        "plain",
        "headwater",
        "overhead",
        "hash",
        "beyond hash",
        "core emit",
        "label read",
        "adapter itself",
        "< 5 ms",
    )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
