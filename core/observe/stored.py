"""Outputs whose bytes are kept, not only referenced: `hw.Output(..., store=True)` from a task.

An adapter records what a task wrote as a reference to where it lies (nothing is copied). A user
who returns or logs `hw.Output(name, path, store=True)` asked for what `hw.link` does with it: a
copy of the bytes in the blob store, so the version can be downloaded after the file is gone.
The copy is made within the batch's time budget, and its blobs land before the version's event
is queued (a recorded stored version is always restorable); what cannot be stored in time, or
cannot be stored at all (a remote URI), is one warning line and recorded as a reference.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from headwater.api import Client
from headwater.events import VersionRecorded
from headwater.models import ManifestEntry
from headwater.observe.batch import Batch
from headwater.observe.locations import Location
from headwater.observe.record import linkable, produced_locations
from headwater.observe.safety import one_line
from headwater.refs import validate_alias

log = logging.getLogger("headwater")


def produced_outputs(b: Batch, rid: str, outputs: list[Location]) -> list[tuple[str, str]]:
    """`produced_locations`, where outputs that asked for `store=True` keep their bytes (or, when
    they cannot, are recorded as references like the others)."""
    kept = {item.name or item.key: item for item in outputs if item.store}
    referenced = [item for item in outputs if not item.store]
    recorded: list[tuple[str, str]] = []
    for item in kept.values():
        ref = produced_stored(b, rid, item)
        if ref is None:
            referenced.append(item)
        elif linkable(ref):
            recorded.append((item.key, ref))
    return produced_locations(b, rid, referenced) + recorded


def _store(client: Client, item: Location) -> tuple[str, list[ManifestEntry]]:
    content = client.content(item.target, store=True)
    for entry in content.entries:
        source = content.files.get(entry.path)
        if source is not None:
            client.blobs.put_file(source, entry.digest)
    return content.digest, content.entries


def _within(seconds: float, client: Client, item: Location) -> tuple[str, list[ManifestEntry]]:
    # A daemon thread: a copy that outlives the budget is abandoned and never holds up the exit
    # (blobs are content-addressed: a half-done copy is finished or collected later).
    done: Future[tuple[str, list[ManifestEntry]]] = Future()

    def work() -> None:
        try:
            done.set_result(_store(client, item))
        except BaseException as err:  # noqa: BLE001 - handed to the waiting caller
            done.set_exception(err)

    threading.Thread(target=work, name="headwater-store", daemon=True).start()
    return done.result(timeout=seconds)


def produced_stored(b: Batch, rid: str, item: Location) -> str | None:
    """The run wrote `item` and asked for its bytes to be kept: `name@digest`, as `Batch.produced`;
    None (one warning line) when they cannot be stored within the budget, or at all."""
    if not b.active:
        return None
    try:
        # As Batch._hash: a fifth of the budget stays for delivery.
        digest, entries = _within(max(0.0, b.remaining() - 0.2 * b.observer.timeout), b.observer.client(), item)
    except FutureTimeout:
        reason = f"not stored within {b.observer.timeout:g}s"
    except Exception as err:  # noqa: BLE001 - recorded as a reference instead
        reason = one_line(err)
    else:
        name = item.name or item.key
        b.events.append(
            VersionRecorded(
                name=name,
                digest=digest,
                entries=entries,
                type=item.type,
                metadata=item.metadata or {},
                aliases=[validate_alias(a) for a in item.aliases],
                tags=list(item.tags),
                description=item.description,
                run_id=rid,
                direction="produced",
            )
        )
        return f"{name}@{digest}"
    log.warning("headwater: output %s recorded as a reference, not stored (%s)", item.name or item.key, reason)
    return None
