"""Background delivery (HEADWATER_DELIVERY=background): a detached process drains an outbox.

A task process then only makes its batch durable in the outbox and hands over: it never imports
the store (SQLAlchemy, Alembic, an HTTP client) nor waits for a commit. One deliverer runs per
outbox folder (a home and a backend), elected by an flock on `.deliverer.lock` in that folder:

- a task that finds the lock free takes it, starts `python -m headwater.deliverer` in a session
  of its own with the lock's file descriptor inherited, and closes its own copy: the lock passes
  to the child without a moment free, so two tasks starting together start one deliverer;
- a task that finds the lock held does nothing: the holder sees every batch written before that
  (it looks again after it gives the lock up, below);
- the deliverer delivers with the outbox's own drain (`Client.sync`: the drain lock, groups,
  dead/, event ids the store skips), then lingers (LINGER_S) for more batches; before it exits it
  gives the lock up and looks once more, so a batch written while it was leaving is delivered by
  it (it takes the lock back) or by the deliverer that task started;
- a deliverer that dies (killed, crashed) frees the lock with its process, and the next task
  starts another; what it had not removed from the outbox is delivered again, and the store skips
  the events it had applied: exactly-once effects, as with inline delivery.

Nothing here may break a pipeline: a deliverer that cannot be started is one warning line, and
the batch waits in the outbox for the next task's deliverer or `headwater sync`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING

from headwater.errors import HeadwaterError
from headwater.outbox import _Flock, _lock

if TYPE_CHECKING:  # pragma: no cover
    from subprocess import Popen

    from headwater.api import Client

log = logging.getLogger("headwater")

ELECTION = ".deliverer.lock"
LOG = ".deliverer.log"  # the deliverer's warnings (its stderr); restarted past LOG_BYTES
LOG_BYTES = 1 << 20
LINGER_S = 2.0  # idle time a deliverer waits for more batches before it exits
POLL_S = 0.02
# Deliverers this process started, kept to be reaped (a long-lived process, dag.test(), starts
# several) rather than left to the garbage collector, which warns about a child still running.
_started: list[Popen[bytes]] = []


def hand_over(client: Client) -> None:
    """After a batch is durable in `client`'s outbox: make sure a deliverer will deliver it.

    Never raises: a deliverer that cannot be started is one warning line; the batch waits."""
    folder = client.outbox.folder
    try:
        lock = _lock(folder / ELECTION, 0)
    except Exception as err:  # noqa: BLE001 - a read-only home: the batch could not be written either
        log.warning("headwater: no deliverer for %s (%s); `headwater sync` delivers the outbox", folder, err)
        return
    if lock is None:
        return  # a deliverer runs: it looks at the outbox again before it exits
    if not isinstance(lock, _Flock):  # pragma: no cover - Windows: background delivery is inline there
        lock.release()
        return
    try:
        _start(client, lock.fd)
    except Exception as err:  # noqa: BLE001 - the batch is durable: it waits for the next deliverer
        lock.release()
        log.warning(
            "headwater: the deliverer for %s did not start (%s); the batch waits in the outbox, "
            "`headwater sync` delivers it",
            folder,
            " ".join(str(err).split())[:300],
        )
    else:
        # Closed, not unlocked: LOCK_UN would free the lock the child's copy of the descriptor
        # holds (one open file, one lock); closing ours leaves it to the child.
        os.close(lock.fd)


def _start(client: Client, fd: int) -> None:
    import subprocess  # only in a task that starts a deliverer

    env = dict(os.environ)
    # The backend and home this client writes to (airflow.cfg or a Prefect block may name them,
    # not the environment); through the environment, so no password shows in `ps`.
    env.update(HEADWATER_HOME=str(client.home), HEADWATER_URI=client.uri)
    if client._token:
        env["HEADWATER_TOKEN"] = client._token
    env.pop("HEADWATER_DELIVERY", None)  # the deliverer itself delivers inline
    _started[:] = [process for process in _started if process.poll() is None]
    with open(client.outbox.folder / LOG, "ab") as errors:
        # A session of its own: the orchestrator's kill of the task's process group spares it.
        # No pipe of the task's: a supervisor reading the task's output must not wait for it.
        process = subprocess.Popen(
            [sys.executable, "-m", "headwater.deliverer", str(fd)],  # the election lock, inherited
            env=env,
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            pass_fds=(fd,),
            start_new_session=True,
        )
    _started.append(process)


def serve(client: Client, lock: _Flock | None, *, linger: float = LINGER_S) -> None:
    """Deliver the outbox until it has been empty for `linger` seconds, then exit (see above).

    A delivery the backend stops (down, a refused token) leaves its batches for the next
    deliverer: only a batch written since is a reason to try again before then."""
    outbox = client.outbox
    stuck: set[str] = set()
    while lock is not None:
        idle_since = time.monotonic()
        while True:
            if {path.name for path in outbox.pending()} - stuck:
                try:
                    error = client.sync().error
                except HeadwaterError as err:  # the disk refused removing a delivered batch, say
                    error = str(err)
                stuck = {path.name for path in outbox.pending()} if error else set()
                if error:
                    log.warning("headwater: deliverer stopped: %s; %d batch(es) wait", error, len(stuck))
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= linger:
                break
            else:
                time.sleep(POLL_S)
        lock.release()
        # A task that found the lock held just before we gave it up started nobody: look again.
        if not {path.name for path in outbox.pending()} - stuck:
            return
        taken = _lock(outbox.folder / ELECTION, 0)
        lock = taken if isinstance(taken, _Flock) else None


def wait_delivered(client: Client, timeout: float = 120.0) -> bool:
    """Until `client`'s outbox is empty and its deliverer has exited; whether that happened in time.

    For benchmarks and tests, once their tasks are done: it takes the election lock for an
    instant to see that it is free, and a task that found it held then would start nobody."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.outbox.pending():
            lock = _lock(client.outbox.folder / ELECTION, 0) if client.outbox.folder.is_dir() else None
            if lock is not None or not client.outbox.folder.is_dir():
                if lock is not None:
                    lock.release()
                return True
        time.sleep(POLL_S)
    return False


def main(argv: list[str] | None = None) -> int:
    """`python -m headwater.deliverer FD`: FD is the election lock the starting task passed on."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(message)s")
    lock = _Flock(int((sys.argv[1:] if argv is None else argv)[0]))
    from headwater.api import Client

    client = Client()
    log_file = client.outbox.folder / LOG
    try:
        if log_file.stat().st_size > LOG_BYTES:
            os.truncate(log_file, 0)  # our stderr is opened to append: writes go on from 0
    except OSError:
        pass
    try:
        serve(client, lock)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
