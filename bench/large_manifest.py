"""A version of a million files recorded through the tracking server, on SQLite and PostgreSQL.

    python bench/large_manifest.py [--entries 1000000] [--max-body-mb 64] [--postgres postgresql://...] [--json]

Starts one `headwater server` per database on 127.0.0.1 (one worker, a body limit of
`--max-body-mb`, 64 MiB by default as in production), then, from this process, applies one batch through
HTTPStore.apply: a run and the
version it produced, with `--entries` entries of small files. The entries are synthetic (paths
`dNNNN/fNNNNNNN.bin`, random blake3 digests, sizes under 4 KiB) and their blobs are not uploaded:
this measures the manifest's way (staged gzip-compressed apart, then the event), not blob uploads.

Reported per database: the batch's JSON size as one body (what used to be refused past 64 MiB),
the bytes actually sent (staged manifest plus event), wall time of the apply, peak RSS of this
client during the apply (VmHWM reset before it) and of the server process, and the entry count
the database then holds for the version (checked against `--entries`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from http_bench import postgres_database, server_process

MiB = 1 << 20


def _vmhwm(pid: int | str = "self") -> int:
    """Peak resident set of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _events(n: int) -> list[Any]:
    from headwater.digest import manifest_digest
    from headwater.events import RunRecorded, VersionRecorded
    from headwater.models import ManifestEntry

    rng = random.Random(12)
    entries = [
        ManifestEntry.model_construct(
            path=f"d{i // 1000:04d}/f{i:07d}.bin",
            digest=f"blake3:{rng.getrandbits(256):064x}",
            size=rng.randrange(4096),
            ref=None,
        )
        for i in range(n)
    ]
    run_id = f"bench-{os.getpid()}-{n}"
    return [
        RunRecorded(run_id=run_id, job="index", status="succeeded"),
        VersionRecorded(
            name="bench/files", digest=manifest_digest(entries), entries=entries, run_id=run_id, direction="produced"
        ),
    ]


def _entry_count(store_uri: str, digest: str) -> int:
    import sqlalchemy as sa

    from headwater.store.sql import engine_url

    engine = sa.create_engine(engine_url(store_uri))
    with engine.connect() as conn:
        count = conn.execute(
            sa.text(
                "SELECT count(*) FROM entries JOIN versions ON versions.id = entries.version_id WHERE "
                "versions.digest = :d"
            ),
            {"d": digest},
        ).scalar()
    engine.dispose()
    return int(count or 0)


def measure(store_uri: str, folder: Path, events: list[Any], max_body_mb: float) -> dict[str, Any]:
    from headwater.events import EVENTS
    from headwater.store.http import HTTPStore

    whole = len(EVENTS.dump_json(events))
    with server_process(store_uri, folder, 1, {"HEADWATER_SERVER_MAX_BODY_MB": str(max_body_mb)}) as (url, process):
        store = HTTPStore(url, home=folder / "client")
        sent = 0

        def count(request: Any) -> None:
            nonlocal sent
            sent += len(request.content)

        store._conn.http.event_hooks["request"].append(count)
        store.limits()  # the one GET a large batch makes first, outside the timing
        _reset_peak()
        started = time.perf_counter()
        store.apply(events)
        seconds = time.perf_counter() - started
        client_peak = _vmhwm()
        server_peak = _vmhwm(process.pid)
        store.close()
    entries = _entry_count(store_uri, events[1].digest)
    return {
        "entries": entries,
        "one body MiB": whole / MiB,
        "sent MiB": sent / MiB,
        "seconds": seconds,
        "client peak MiB": client_peak / MiB,
        "server peak MiB": server_peak / MiB,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--max-body-mb", type=float, default=64.0, help="the server's body limit")
    parser.add_argument("--postgres", default=os.environ.get("HEADWATER_TEST_POSTGRES_URL", ""))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # The server applies a million entries in more than the default 10 s budget; the client
    # waits for the answer here (under a pipeline's budget the batch waits in the outbox, the
    # server commits it anyway, and the replay is skipped by event id).
    os.environ["HEADWATER_TIMEOUT_S"] = "900"
    events = _events(args.entries)
    built = _vmhwm()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="headwater-manifest-bench-") as tmp:
        folder = Path(tmp)
        (folder / "sqlite").mkdir()
        rows.append(
            {
                "database": "SQLite",
                **measure(f"sqlite:///{folder / 'sqlite' / 'bench.db'}", folder / "sqlite", events, args.max_body_mb),
            }
        )
        if args.postgres:
            (folder / "pg").mkdir()
            try:
                with postgres_database(args.postgres) as pg:
                    rows.append({"database": "PostgreSQL", **measure(pg, folder / "pg", events, args.max_body_mb)})
            except Exception as err:  # noqa: BLE001 - say why, keep the SQLite row
                print(f"PostgreSQL skipped: {' '.join(str(err).split())[:200]}", file=sys.stderr)
    for row in rows:
        if row["entries"] != args.entries:
            raise SystemExit(f"{row['database']}: {row['entries']} entries recorded, not {args.entries}")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        columns = ["entries", "one body MiB", "sent MiB", "seconds", "client peak MiB", "server peak MiB"]
        print(
            f"one version of {args.entries:,} entries through `headwater server` (client RSS with the entries "
            f"built: {built / MiB:.0f} MiB)"
        )
        print(f"{'database':<12}" + "".join(f"{c:>17}" for c in columns))
        for row in rows:
            print(
                f"{row['database']:<12}"
                + "".join(f"{row[c]:>17,.1f}" if isinstance(row[c], float) else f"{row[c]:>17,}" for c in columns)
            )
    return rows


if __name__ == "__main__":
    main()
