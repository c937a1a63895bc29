"""Errors a user can act on. Every message fits on one line; the CLI prints it and exits non-zero."""

from __future__ import annotations

import errno


class HeadwaterError(Exception):
    """Base of every error headwater raises on purpose.

    Each class carries the exit code the CLI ends with and the HTTP status the tracking server
    answers with; a subclass without its own travels as its closest named ancestor (WIRE)."""

    exit_code = 1
    http_status = 400


class InvalidRef(HeadwaterError, ValueError):
    """A REF string, alias, name or path that headwater does not accept."""

    exit_code = 2


class InvalidInput(HeadwaterError, ValueError):
    """Bad input other than a REF: a missing file, an unsupported scheme, a path escaping its root."""

    exit_code = 2


class NotFound(HeadwaterError, LookupError):
    """An artifact, version, alias or run that does not exist."""

    exit_code = 3
    http_status = 404


class Conflict(HeadwaterError):
    """The request contradicts what is recorded: mutating a committed version, drifted content."""

    exit_code = 4
    http_status = 409


class Purged(NotFound):
    """The bytes asked for were purged (a privacy takedown, `headwater purge`): the lineage is
    kept, the content is gone for good. Not a missing file to look for again: its own exit code."""

    exit_code = 7
    http_status = 410


class Unavailable(HeadwaterError):
    """The backend cannot be reached within the time budget, or its schema is not one we can use."""

    exit_code = 5
    http_status = 503


class Unwritable(Unavailable):
    """A file headwater keeps locally (a blob, an outbox batch, the outbox lock) cannot be
    written: the disk is full or read-only, or the folder is not ours. Not bad input: nothing is
    recorded, and the same call works once the disk takes writes again."""

    # What a full, read-only or forbidden destination answers (not a source that failed to read).
    ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG})

    @classmethod
    def writing(cls, what: str, err: OSError) -> Unwritable:
        return cls(f"cannot write {what}: {err.strerror or err}")


class SchemaTooNew(Unavailable):
    """The database was migrated by a newer headwater than this one."""


class Unauthorized(Unavailable):
    """The backend refused our credentials (HTTP 401 or 403). Not an outage that passes: every
    write fails until the token is fixed. Batches wait in the outbox meanwhile, as in an outage."""

    exit_code = 6


# The classes an error travels as between server and client, by name: the server answers the
# closest of them, and the client raises the class the body names. Unwritable and Unauthorized
# are the client's own (its disk, its token) and travel as Unavailable.
WIRE: dict[str, type[HeadwaterError]] = {
    cls.__name__: cls
    for cls in (InvalidRef, InvalidInput, NotFound, Purged, Conflict, SchemaTooNew, Unavailable, HeadwaterError)
}


def status_of(err: HeadwaterError) -> tuple[int, str]:
    """(HTTP status, error name) for an error, by its closest class in WIRE."""
    for cls in type(err).__mro__:
        named = WIRE.get(cls.__name__)
        if named is cls:
            return named.http_status, named.__name__
    return HeadwaterError.http_status, HeadwaterError.__name__
