"""One Client and one Observer per backend, shared by every hook of a process.

A Client is keyed by (uri, home, token, pid): the home holds the outbox, so a changed
HEADWATER_HOME is a new client, and connections do not survive a fork (Airflow forks task
processes), so a child makes its own.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from headwater import config
from headwater.observe.batch import Observer

if TYPE_CHECKING:  # pragma: no cover
    from headwater.api import Client

_lock = threading.Lock()
# (uri, token) -> ((home, pid), client): the newest client of each backend. One replaced in the
# same process is closed; one inherited through a fork is left alone (the parent owns it).
_clients: dict[tuple[str | None, str | None], tuple[tuple[Path, int], Client]] = {}
_observers: dict[tuple[str, str | None, str | None, str | None, float | None, bool], Observer] = {}


def client_for(uri: str | None = None, home: str | os.PathLike[str] | None = None, token: str | None = None) -> Client:
    """The client of this process for a backend; HEADWATER_URI/HEADWATER_HOME when all are None."""
    from headwater.api import Client, default_client  # loaded with the first batch, not the adapter

    if uri is None and home is None and token is None:
        return default_client()  # rebuilt when HEADWATER_URI or HEADWATER_HOME change
    key = (Path(home).expanduser().absolute() if home is not None else config.headwater_home(), os.getpid())
    with _lock:
        cached = _clients.get((uri, token))
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None and cached[0][1] == os.getpid():
            cached[1].close()
        client = Client(uri=uri, home=home, token=token)
        _clients[(uri, token)] = (key, client)
        return client


def observer_for(
    orchestrator: str,
    uri: str | None = None,
    home: str | None = None,
    token: str | None = None,
    *,
    timeout: float | None = None,
    disabled: bool = False,
) -> Observer:
    """The observer of an orchestrator recording to a backend (see Observer for the rest)."""
    key = (orchestrator, uri, home, token, timeout, disabled)
    with _lock:
        found = _observers.get(key)
        if found is None:
            found = _observers[key] = Observer(
                orchestrator, lambda: client_for(uri, home, token), timeout=timeout, disabled=disabled
            )
        return found


def forget_clients() -> None:
    """Close the clients this process opened here and forget them (tests; a worker shutting down)."""
    with _lock:
        cached = list(_clients.values())
        _clients.clear()
    for (_, pid), client in cached:
        if pid == os.getpid():
            client.close()
