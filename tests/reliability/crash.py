"""Crash points for kill -9 tests, run as a script: `python -m tests.reliability.crash write|cli ...`.

With HEADWATER_TEST_CRASH=<step>:<n> the process stops itself (SIGSTOP) the n-th time (from 0) it
reaches <step>, after printing `crash <step> <n>` on stdout: the test sees the marker, then kills
it with SIGKILL, so the kill lands exactly there rather than at a moment a timer happened to pick.
The steps of one write, in order:

- blob-stored: a blob is in the blob store, its batch not yet written
- batch-written: the batch's bytes are in `.tmp-<name>`, neither fsynced nor renamed
- batch-durable: the batch is fsynced and renamed into the outbox
- before-commit: the store applied the batch inside its transaction, not yet committed
  (through a tracking server: the request is about to be sent)
- committed: the store committed the batch; its outbox file is not yet removed

`write URI FOLDER N` logs `step-i` producing `model` from `FOLDER/m<i>` (content `model <i>`) N
times, printing `done <i>` after each; `cli ARGS...` runs the headwater CLI (`sync`, `server`).
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = ("blob-stored", "batch-written", "batch-durable", "before-commit", "committed")
_seen: Counter[str] = Counter()


def _reach(step: str) -> None:
    wanted = os.environ.get("HEADWATER_TEST_CRASH", "")
    if not wanted:
        return
    name, _, count = wanted.partition(":")
    if name == step and _seen[step] == int(count or 0):
        sys.stdout.write(f"crash {step} {_seen[step]}\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSTOP)  # the test kills us from here
    _seen[step] += 1


def install() -> None:
    from headwater.blobs import BlobStore
    from headwater.outbox import Outbox
    from headwater.store.http import HTTPBlobStore, HTTPStore
    from headwater.store.sql import SQLStore

    def after(cls: type, method: str, step: str) -> None:
        real = getattr(cls, method)

        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = real(self, *args, **kwargs)
            _reach(step)
            return result

        setattr(cls, method, wrapped)

    after(BlobStore, "put_file", "blob-stored")
    after(HTTPBlobStore, "put_file", "blob-stored")

    real_start = Outbox._start

    def start(self: Outbox, events: Any) -> tuple[str, int, Callable[[], None]]:
        name, size, finish = real_start(self, events)
        _reach("batch-written")

        def durable() -> None:
            finish()
            _reach("batch-durable")

        return name, size, durable

    Outbox._start = start  # type: ignore[method-assign]

    for store in (SQLStore, HTTPStore):
        real_apply = store.apply

        def apply(
            self: Any, events: Any, *, before_commit: Callable[[], None] | None = None, _real: Any = real_apply
        ) -> list[str]:
            def commit_next() -> None:
                if before_commit is not None:
                    before_commit()
                _reach("before-commit")

            notices: list[str] = _real(self, events, before_commit=commit_next)
            _reach("committed")
            return notices

        store.apply = apply  # type: ignore[method-assign]


def write(uri: str, folder: Path, n: int) -> None:
    import headwater as hw

    client = hw.Client(uri=uri)
    for i in range(n):
        (folder / f"m{i}").write_text(f"model {i}")
        client.link(f"step-{i}", outputs=[hw.Output("model", folder / f"m{i}")])
        print(f"done {i}", flush=True)


if __name__ == "__main__":
    install()
    if sys.argv[1] == "write":
        write(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
    else:
        from headwater.cli import main

        main(sys.argv[2:])
