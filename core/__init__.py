"""headwater: lineage for ML and data pipelines.

    import headwater as hw
    with hw.run("train") as run:
        data = run.use("mnist-train:latest")
        run.log_artifact("mnist-cnn", "model.pt", type="model")
    hw.upstream("mnist-cnn:latest")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from typing import TYPE_CHECKING

from headwater.errors import (
    Conflict,
    HeadwaterError,
    InvalidInput,
    InvalidRef,
    NotFound,
    SchemaTooNew,
    Unavailable,
)

if TYPE_CHECKING:  # pragma: no cover
    from headwater.api import ActiveRun, Client, Output
    from headwater.models import (
        AliasMove,
        Artifact,
        Diff,
        Impact,
        LineageGraph,
        Run,
        Version,
        VerifyReport,
    )

# `import headwater` stays cheap (an Airflow worker imports the plugin in every process): the API
# and the models load on first use (PEP 562).
_LAZY = {
    "ActiveRun": "headwater.api", "Client": "headwater.api", "Output": "headwater.api",
    "run_id": "headwater.api",
    "AliasMove": "headwater.models", "Artifact": "headwater.models", "Diff": "headwater.models",
    "Edge": "headwater.models", "Impact": "headwater.models", "LineageGraph": "headwater.models",
    "ManifestEntry": "headwater.models", "Run": "headwater.models", "Version": "headwater.models",
    "VerifyReport": "headwater.models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def default_client() -> Client:
    from headwater.api import default_client as get

    return get()


__version__ = "0.1.0.dev0"


# Module-level functions act on the default client (HEADWATER_URI / HEADWATER_HOME).
def run(job: str, **kwargs: Any) -> ActiveRun:
    return default_client().run(job, **kwargs)


def link(job: str, inputs: Any = (), outputs: Any = (), **kwargs: Any) -> Run:
    return default_client().link(job, inputs, outputs, **kwargs)


def log_artifact(name: str, path: Any, **kwargs: Any) -> Version:
    return default_client().log_artifact(name, path, **kwargs)


def log_reference(name: str, uri: str, **kwargs: Any) -> Version:
    return default_client().log_reference(name, uri, **kwargs)


def get(ref: str, at: datetime | None = None) -> Version:
    return default_client().get(ref, at=at)


def alias(ref: str, alias: str) -> Version:
    return default_client().alias(ref, alias)


def unalias(name: str, alias: str) -> None:
    default_client().unalias(name, alias)


def tag(ref: str, *tags: str) -> Version:
    return default_client().tag(ref, *tags)


def untag(ref: str, *tags: str) -> Version:
    return default_client().untag(ref, *tags)


def delete(ref: str) -> Version:
    return default_client().delete(ref)


def upstream(ref: str, depth: int | None = None) -> LineageGraph:
    return default_client().upstream(ref, depth=depth)


def downstream(ref: str, depth: int | None = None) -> LineageGraph:
    return default_client().downstream(ref, depth=depth)


def path(source: str, target: str) -> LineageGraph:
    return default_client().path(source, target)


def diff(left: str, right: str) -> Diff:
    return default_client().diff(left, right)


def impact(digest: str | None = None, path: Any = None, ref: str | None = None, **kwargs: Any) -> Impact:
    return default_client().impact(digest=digest, path=path, ref=ref, **kwargs)


def verify(ref: str) -> VerifyReport:
    return default_client().verify(ref)


def artifacts(type: str | None = None, limit: int | None = None, name_like: str | None = None, **kwargs: Any) -> list[Artifact]:
    return default_client().artifacts(type=type, limit=limit, name_like=name_like, **kwargs)


def versions(name: str, limit: int | None = None, **kwargs: Any) -> list[Version]:
    return default_client().versions(name, limit=limit, **kwargs)


def runs(job: str | None = None, orchestrator: str | None = None, **kwargs: Any) -> list[Run]:
    return default_client().runs(job=job, orchestrator=orchestrator, **kwargs)


def runs_using(name: str) -> list[Run]:
    return default_client().runs_using(name)


def alias_history(name: str, alias: str | None = None) -> list[AliasMove]:
    return default_client().alias_history(name, alias)


def sync(timeout: float | None = None) -> Any:
    return default_client().sync(timeout=timeout)


__all__ = [
    "ActiveRun", "AliasMove", "Artifact", "Client", "Conflict", "Diff", "Edge", "HeadwaterError",
    "Impact", "InvalidInput", "InvalidRef", "LineageGraph", "ManifestEntry", "NotFound", "Output",
    "Run", "SchemaTooNew", "Unavailable", "Version", "VerifyReport", "alias", "alias_history",
    "artifacts", "default_client", "delete", "diff", "downstream", "get", "impact", "link",
    "log_artifact", "log_reference", "path", "run", "run_id", "runs", "runs_using", "sync", "tag",
    "unalias", "untag", "upstream", "verify", "versions",
]
