"""Reference strings (REF) and artifact names.

A REF picks one version of an artifact: ``name`` (its ``latest``), ``name:v3`` (a label),
``name:production`` (an alias) or ``name@<digest prefix>`` (8+ hex chars, ``blake3:`` optional).

Names may be URIs. Location artifacts are named by a canonical URI, normalised the way
OpenLineage names datasets, so that the same location seen by Airflow, Prefect, Dagster or an
OpenLineage producer is one artifact: ``s3://bucket/key``, ``gs://bucket/key``,
``file:///abs/path``, ``postgres://host:5432/db.schema.table``.

``file://`` names are local to a host: ``file:///data/x.csv`` written on two machines is one
name for two different files, and headwater cannot tell them apart. Pipelines that span
machines should use a shared location (``s3://``, ``gs://``, a database table, ...).

Everything here is pure (no store access) and uses the standard library only.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from headwater.errors import InvalidInput, InvalidRef

__all__ = [
    "ALIAS_RE",
    "LABEL_RE",
    "LATEST",
    "Ref",
    "file_uri_to_path",
    "is_alias",
    "is_label",
    "is_uri",
    "name_to_ol_dataset",
    "normalize_name",
    "normalize_uri",
    "ol_dataset_to_name",
    "parse_ref",
    "path_to_file_uri",
    "validate_alias",
    "validate_name",
]

LATEST = "latest"
LABEL_RE = re.compile(r"v[0-9]+")
# The lookahead keeps labels out, so ALIAS_RE.fullmatch alone decides "is an alias".
ALIAS_RE = re.compile(r"(?!v[0-9]+\Z)[A-Za-z][A-Za-z0-9_.-]*")

_DIGEST_SUFFIX_RE = re.compile(r"(?P<name>.*)@(?P<digest>(?:blake3:)?[0-9a-f]{8,})", re.IGNORECASE | re.DOTALL)
_URI_PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# A plain name that ol_dataset_to_name made from a namespace that is not a URI scheme
# (e.g. "food_delivery"): name_to_ol_dataset splits it back.
_FOREIGN_NS_RE = re.compile(r"(?P<ns>[^:/]+)://(?P<name>.+)", re.DOTALL)

_MAX_NAME = 1024
_REF_FORMS = "use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST (8+ hex chars)"

# Spellings of one storage system that OpenLineage (and the orchestrators) fold into one.
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "postgresql": "postgres"}
# OpenLineage names PostgreSQL datasets with an explicit port, so a missing one is filled in ...
_EXPLICIT_PORTS = {"postgres": 5432}
# ... while for HTTP the default port is the same location as no port at all.
_IMPLIED_PORTS = {"http": 80, "https": 443}
_NEEDS_HOST = frozenset({"s3", "gs", "postgres"})
# Names are stored and shown everywhere: credentials must never become part of one. For these
# schemes the user part is a login too; elsewhere it can be meaningful (wasbs://container@account).
_DROP_USER = frozenset({"postgres", "http", "https"})
_KEEP_QUERY = frozenset({"http", "https"})
# In a file URI these would end the path ('?', '#'), start an escape ('%') or split the
# segment ('/'), so a file name holding them must carry them encoded.
_FILE_DELIMITERS = frozenset("%?#/")


def _show(value: object) -> str:
    """Quote a user value for a one-line message: repr escapes newlines, long values are cut."""
    if isinstance(value, str) and len(value) > 100:
        value = value[:97] + "..."
    return repr(value)


def _bad_char(text: str) -> str | None:
    """The first character a name or REF may not hold, or None.

    Interior ASCII spaces are allowed so that every valid name is also a valid REF; tabs,
    newlines, other controls, other whitespace and lone surrogates are not (they cannot be
    typed, shown on one line, or stored as UTF-8).
    """
    for ch in text:
        if (ch.isspace() and ch != " ") or unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    if text[:1] == " " or text[-1:] == " ":
        return " "
    return None


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str) or not text:
        raise InvalidRef(f"invalid {what} {_show(text)}: it must be a non-empty string")
    ch = _bad_char(text)
    if ch is not None:
        raise InvalidRef(
            f"invalid {what} {_show(text)}: {_show(ch)} not allowed "
            "(no control characters, line breaks, tabs, or leading/trailing spaces)"
        )
    return text


# --- labels and aliases ------------------------------------------------------------------------


def is_label(s: object) -> bool:
    """True for a version label: ``v`` followed by digits."""
    return isinstance(s, str) and LABEL_RE.fullmatch(s) is not None


def is_alias(s: object) -> bool:
    """True for a syntactically valid alias (``latest`` included): not a label, see ALIAS_RE."""
    return isinstance(s, str) and ALIAS_RE.fullmatch(s) is not None


def validate_alias(alias: str, *, allow_latest: bool = False) -> str:
    """Return `alias` if a user may set it; ``latest`` is reserved (headwater moves it itself)."""
    if not is_alias(alias):
        raise InvalidRef(
            f"invalid alias {_show(alias)}: an alias matches [A-Za-z][A-Za-z0-9_.-]* "
            "and does not look like a label (v<digits>)"
        )
    if alias == LATEST and not allow_latest:
        raise InvalidRef("alias 'latest' is reserved: headwater moves it to the newest version")
    return alias


# --- references --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """One version of an artifact, picked by exactly one of label, alias or digest.

    `name` is already normalised. With no selector given, the alias is ``latest``. `digest` is
    a prefix as given (``ab12cd34`` or ``blake3:ab12cd34``); it is not checked against the hex
    form here because the store also builds Refs from full pointer digests (``etag:…``).
    """

    name: str
    label: str | None = None
    alias: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidRef(f"invalid reference: empty artifact name ({_REF_FORMS})")
        chosen = [s for s in (self.label, self.alias, self.digest) if s is not None]
        if len(chosen) > 1:
            raise InvalidRef(f"invalid reference to {_show(self.name)}: give one of label, alias or digest")
        if not chosen:
            # Frozen dataclass: the only way to default the selector after the fact.
            object.__setattr__(self, "alias", LATEST)
        if self.label is not None and not is_label(self.label):
            raise InvalidRef(f"invalid label {_show(self.label)}: labels are v<digits>")
        if self.alias is not None and not is_alias(self.alias):
            raise InvalidRef(f"invalid alias {_show(self.alias)}: an alias matches [A-Za-z][A-Za-z0-9_.-]*")
        if self.digest is not None:
            _check_text(self.digest, "digest")

    def __str__(self) -> str:
        # `latest` is written out rather than dropped so that the text parses back to this Ref
        # even for names that themselves end in ':vN' or ':word'.
        if self.label is not None:
            return f"{self.name}:{self.label}"
        if self.digest is not None:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.alias}"


def _bad_ref(text: object, reason: str) -> InvalidRef:
    return InvalidRef(f"invalid reference {_show(text)}: {_REF_FORMS}; {reason}")


def _ref_name(name: str, text: str) -> str:
    if not name:
        raise _bad_ref(text, "the name before the suffix is empty")
    if "@" in name and not is_uri(name):
        # A plain name holding '@' that is not an existing artifact (checked by the caller) is
        # almost surely a mistyped digest ('x@zz'); URIs legitimately hold '@' (user@host).
        raise _bad_ref(text, "a digest is 8 or more hex chars, optionally prefixed by 'blake3:'")
    return validate_name(name)


def parse_ref(text: str, is_artifact: Callable[[str], bool] | None = None) -> Ref:
    """Parse a REF: ``NAME``, ``NAME:vN``, ``NAME:ALIAS`` or ``NAME@DIGEST``.

    Names may hold ':' and '@' (URIs do), so the whole string is tried as a name first when
    `is_artifact` is given (it receives the normalised name). Otherwise the string splits at a
    trailing ``@<8+ hex>`` / ``@blake3:<hex>`` or ``:<label|alias>``; a ':' suffix that is neither
    (``postgres://db:5432``) leaves the whole string a name. A bare name means its ``latest``.
    """
    if not isinstance(text, str) or not text:
        raise _bad_ref(text, "it is empty")
    if _bad_char(text) is not None:
        raise _bad_ref(text, "no control characters, line breaks, tabs, or leading/trailing spaces")

    if is_artifact is not None:
        try:
            whole = validate_name(text)
        except InvalidRef:
            whole = None  # not a valid name as a whole; it may still be NAME + suffix
        if whole is not None and is_artifact(whole):
            return Ref(whole, alias=LATEST)

    if text.endswith("@"):
        raise _bad_ref(text, "nothing after '@'")
    digest_match = _DIGEST_SUFFIX_RE.fullmatch(text)
    if digest_match:
        # Stored digests are lowercase hex; lowering here lets a pasted uppercase prefix match.
        return Ref(_ref_name(digest_match["name"], text), digest=digest_match["digest"].lower())

    name, colon, suffix = text.rpartition(":")
    if colon:
        if not suffix:
            raise _bad_ref(text, "nothing after ':'")
        if is_label(suffix):
            # 'v03' and 'v3' are the same label; the store keeps the number.
            return Ref(
                _ref_name(name, text), label="v" + (suffix[1:].lstrip("0") or "0")
            )  # not int(): 5,000 digits is a ValueError
        if is_alias(suffix):
            return Ref(_ref_name(name, text), alias=suffix)
    return Ref(_ref_name(text, text), alias=LATEST)


# --- names and URIs ----------------------------------------------------------------------------


def is_uri(s: str) -> bool:
    """True when `s` starts with ``scheme://`` (or is an RFC 8089 ``file:/path``)."""
    return isinstance(s, str) and (_URI_PREFIX_RE.match(s) is not None or s[:6].lower() == "file:/")


def validate_name(name: str) -> str:
    """Check an artifact name and return its canonical form (see normalize_name).

    Non-empty, at most 1024 characters, no control characters or line breaks, no leading or
    trailing spaces. ``file://`` names are local to a host (see the module docstring).
    """
    canonical = normalize_name(name)
    if len(canonical) > _MAX_NAME:
        raise InvalidRef(f"invalid name {_show(name)}: longer than {_MAX_NAME} characters")
    return canonical


def normalize_name(name: str) -> str:
    """URIs become their canonical form (normalize_uri); plain names are kept as they are."""
    # A pure function of the string that adapters and the store call several times for each
    # location they record: each distinct name is checked and normalised once per process.
    return _cached_normalize_name(name) if type(name) is str else _normalize_name(name)


def _normalize_name(name: str) -> str:
    _check_text(name, "name")
    return normalize_uri(name) if is_uri(name) else name


_cached_normalize_name = functools.lru_cache(maxsize=4096)(_normalize_name)


def _split_authority(netloc: str, scheme: str, uri: str) -> tuple[str, str, int | None]:
    """(userinfo to keep, lowercased host, port) of a URI authority."""
    userinfo, _, hostport = netloc.rpartition("@")
    if scheme in _DROP_USER:
        userinfo = ""
    else:
        userinfo = userinfo.partition(":")[0]  # never keep a password
    if hostport.startswith("["):  # IPv6 literal: its colons are not a port separator
        end = hostport.find("]")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else rest
    else:
        host, _, port_text = hostport.partition(":")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
            raise InvalidRef(f"invalid URI {_show(uri)}: port {_show(port_text)} is not a number up to 65535")
        port = int(port_text)
    return userinfo, host.lower(), port


def _remove_dot_segments(segments: list[str]) -> list[str]:
    """Drop empty and '.' segments, resolve '..' (never above the root)."""
    out: list[str] = []
    for seg in segments:
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return out


def _pct_encode(ch: str) -> str:
    try:
        # surrogateescape turns a byte that os.fsdecode could not decode back into that byte.
        data = ch.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise InvalidInput(f"path holds an unencodable character {_show(ch)}") from None
    return "".join(f"%{b:02X}" for b in data)


def _quote_file_segment(segment: str) -> str:
    # Only what a URI parser or a REF cannot carry is encoded; 'café' stays readable.
    return "".join(
        _pct_encode(ch) if ch in _FILE_DELIMITERS or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs") else ch
        for ch in segment
    )


def _quote_file_path(path: str) -> str:
    return "/".join(_quote_file_segment(seg) for seg in path.split("/"))


def _unquote(text: str) -> str:
    # surrogateescape keeps undecodable bytes, so non-UTF-8 file names survive a round trip.
    return unquote(text, errors="surrogateescape")


def _normalize_file(netloc: str, path: str, uri: str) -> str:
    if netloc.lower() not in ("", "localhost"):
        # 'file://data/x.csv' is usually a relative path typed by mistake, not a remote host.
        raise InvalidRef(f"invalid file URI {_show(uri)}: host {_show(netloc)} is not local; use file:///abs/path")
    if not path.startswith("/"):
        raise InvalidRef(f"invalid file URI {_show(uri)}: the path must be absolute; use file:///abs/path")
    # Decode first so that 'my file' and 'my%20file' (and %2E%2E) reach the same canonical form.
    segments = _remove_dot_segments([_unquote(seg) for seg in path.split("/")])
    return "file:///" + "/".join(_quote_file_segment(seg) for seg in segments)


def normalize_uri(uri: str) -> str:
    """Canonical form of a location URI, matching OpenLineage dataset naming.

    Lowercases scheme and host; folds s3a/s3n to s3, gcs to gs, postgresql to postgres; removes
    duplicate and trailing slashes and '.'/'..' segments; drops fragments, passwords, and queries
    except for http(s). ``file:`` URIs become ``file:///abs/path`` with canonical percent-encoding
    (``file:/p`` and ``file://localhost/p`` accepted); they are local to a host. PostgreSQL gets
    ``postgres://host:5432/db.schema.table`` with the default port filled in. Percent-escapes in
    other schemes are kept verbatim: object-store keys are literal text there.
    """
    _check_text(uri, "URI")
    if not is_uri(uri):
        raise InvalidRef(f"invalid URI {_show(uri)}: expected SCHEME://...")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. an unbalanced '[' in the host
        raise InvalidRef(f"invalid URI {_show(uri)}: {exc}") from None
    scheme = _SCHEME_ALIASES.get(parts.scheme, parts.scheme)  # urlsplit already lowercased it
    if scheme == "file":
        return _normalize_file(parts.netloc, parts.path, uri)

    userinfo, host, port = _split_authority(parts.netloc, scheme, uri)
    if scheme in _NEEDS_HOST and not host:
        raise InvalidRef(f"invalid URI {_show(uri)}: {scheme}:// needs a bucket or host")
    if port is None:
        port = _EXPLICIT_PORTS.get(scheme)
    elif _IMPLIED_PORTS.get(scheme) == port:
        port = None
    authority = (f"{userinfo}@" if userinfo else "") + host
    if port is not None:
        authority += f":{port}"
    path = "".join("/" + seg for seg in _remove_dot_segments(parts.path.split("/")))
    query = f"?{parts.query}" if parts.query and scheme in _KEEP_QUERY else ""
    return f"{scheme}://{authority}{path}{query}"


def path_to_file_uri(path: str | os.PathLike[str] | os.PathLike[bytes] | bytes) -> str:
    """``file:///abs/path`` for a local path (made absolute; symlinks are not resolved).

    Only ``% ? # /``-in-a-name, whitespace and control characters are percent-encoded, so the
    name stays readable. The result names a file on this host only.
    """
    text = os.fsdecode(os.fspath(path))
    if not text:
        raise InvalidInput("empty path: give a file or directory path")
    absolute = os.path.abspath(text)
    if os.name == "nt":  # C:\x -> /C:/x, the RFC 8089 spelling
        absolute = "/" + absolute.replace("\\", "/")
    return normalize_uri("file://" + _quote_file_path(absolute))


def file_uri_to_path(uri: str) -> pathlib.Path:
    """The local path a ``file:`` URI names (on this host)."""
    if not is_uri(uri) or uri[:5].lower() != "file:":
        raise InvalidInput(f"not a file URI: {_show(uri)}; expected file:///abs/path")
    path = _unquote(normalize_uri(uri)[len("file://") :])
    if os.name == "nt" and re.match(r"/[A-Za-z]:", path):
        path = path[1:]
    return pathlib.Path(path)


# --- OpenLineage dataset naming ----------------------------------------------------------------


def ol_dataset_to_name(namespace: str, name: str, default_namespace: str = "headwater") -> str:
    """Artifact name of an OpenLineage dataset (namespace, name).

    The default namespace holds headwater's plain names and gives the name back unchanged. A
    namespace containing ``://`` joins with one slash (``s3://bucket`` + ``key`` ->
    ``s3://bucket/key``); a bare namespace ``s`` joins as ``s://name`` (``file`` + ``/d/x.csv`` ->
    ``file:///d/x.csv``). The result is normalised; ``file://`` names are local to a host.
    """
    _check_text(namespace, "OpenLineage namespace")
    _check_text(name, "OpenLineage dataset name")
    if namespace == default_namespace:
        return validate_name(name)
    if "://" in namespace:
        return validate_name(namespace.rstrip("/") + "/" + name.lstrip("/"))
    if namespace.lower() == "file":
        # OpenLineage sends local files as raw paths ('/d/my file.csv', '/d/50%.csv'): encode
        # them like path_to_file_uri does instead of reading their '%' as escapes.
        if not name.startswith("/"):
            raise InvalidRef(f"invalid OpenLineage file dataset {_show(name)}: the path must be absolute")
        return validate_name("file://" + _quote_file_path(name))
    return validate_name(f"{namespace}://{name}")


def name_to_ol_dataset(artifact_name: str, default_namespace: str = "headwater") -> tuple[str, str]:
    """OpenLineage (namespace, name) of an artifact: the inverse of ol_dataset_to_name.

    ``s3://bucket/key`` -> (``s3://bucket``, ``key``); ``file:///d/x.csv`` -> (``file``,
    ``/d/x.csv``) with the raw path; a URI without a path (``bigquery://p.d.t``) -> (``bigquery``,
    ``p.d.t``); plain names -> (`default_namespace`, name).
    """
    canonical = validate_name(artifact_name)
    if not is_uri(canonical):
        foreign = _FOREIGN_NS_RE.fullmatch(canonical)
        if foreign and foreign["ns"] != default_namespace:
            return foreign["ns"], foreign["name"]
        return default_namespace, canonical
    scheme, _, rest = canonical.partition("://")
    if scheme == "file":
        return "file", _unquote(rest)
    authority, slash, path = rest.partition("/")
    if not path:
        # The whole location is the dataset (a bucket, a server, 'bigquery://p.d.t'): the bare
        # namespace form is the one that joins back to exactly this name.
        return scheme, authority
    return f"{scheme}://{authority}", path
