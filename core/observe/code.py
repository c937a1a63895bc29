"""Code identity: which code a run ran, recorded alike by every adapter.

`code_identity(file)` is `{"file", "file_digest", "git_sha"}`: the source file, the digest of its
bytes, and the commit checked out in the repository holding it. Read from .git without running
git (never fork per event); the dirty flag would need `git status` and is not recorded: the file
digest says whether the file itself differs from anything recorded before.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()
# path -> ((mtime_ns, size), identity): a stat per call, the file read again only once changed
_files: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}
_heads: dict[Path, dict[str, str]] = {}  # folder -> {"git_sha": ...} or {} outside a repository


def code_identity(file: str | os.PathLike[str] | None) -> dict[str, str]:
    """The identity of the code in `file`; {} when there is no file, only its name when unreadable."""
    if not file:
        return {}
    path = os.fspath(file)
    try:
        st = os.stat(path)
    except OSError:
        return {"file": path}
    stamp = (st.st_mtime_ns, st.st_size)
    with _lock:
        cached = _files.get(path)
    if cached is not None and cached[0] == stamp:
        return dict(cached[1])
    identity = {"file": path}
    from headwater.digest import hash_bytes  # blake3 loads with the first file hashed, not the adapter

    try:
        with open(path, "rb") as f:
            identity["file_digest"] = hash_bytes(f.read())
    except OSError:
        pass
    identity.update(git_head(Path(path)))
    with _lock:
        _files[path] = (stamp, identity)
    return dict(identity)


def git_head(path: Path) -> dict[str, str]:
    """{"git_sha": ...} for the repository holding `path`; {} outside one."""
    folder = path.parent
    with _lock:
        if folder in _heads:
            return _heads[folder]
    found: dict[str, str] = {}
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        if dot_git.exists():
            found = _read_head(dot_git)
            break
    with _lock:
        _heads[folder] = found
    return found


def _read_head(dot_git: Path) -> dict[str, str]:
    try:
        if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot_git.read_text().strip()
            if not text.startswith("gitdir:"):
                return {}
            dot_git = (dot_git.parent / text.split(":", 1)[1].strip()).resolve()
        head = (dot_git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return {"git_sha": head}
        ref = head.split(":", 1)[1].strip()
        common = dot_git
        if (dot_git / "commondir").is_file():
            common = (dot_git / (dot_git / "commondir").read_text().strip()).resolve()
        for root in (dot_git, common):
            loose = root / ref
            if loose.is_file():
                return {"git_sha": loose.read_text().strip()}
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name == ref:
                    return {"git_sha": sha}
    except OSError:
        return {}
    return {}


def function_code(fn: Any) -> dict[str, str]:
    """`{"function": module.qualname}` and the identity of the file defining `fn`."""
    code = getattr(fn, "__code__", None)
    out = {"function": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"}
    out.update(code_identity(code.co_filename if code is not None else None))
    return out
