"""The objects headwater returns. Field names listed in docs/architecture.md are part of the public contract."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, computed_field, model_validator

if TYPE_CHECKING:  # pragma: no cover
    from headwater.api import Client

RunStatus = Literal["running", "succeeded", "failed", "skipped", "aborted"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "skipped", "aborted"})
RunKind = Literal["task", "container", "manual", "openlineage"]
Direction = Literal["used", "produced"]


class _Model(BaseModel):
    # Validators are built on first use: `import headwater` in a task process pays for none.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ManifestEntry(_Model):
    """One file of a version. `ref` (where the bytes live, when not stored) is not part of the digest."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    path: str
    digest: str
    size: int = Field(ge=0)
    ref: str | None = None


class Artifact(_Model):
    """A named series of versions (a dataset, a model, ...), as listed by `hw.artifacts()`."""

    name: str
    type: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    latest: str | None = Field(default=None, description="label of the version `latest` points to")
    versions: int = 0
    updated_at: datetime | None = Field(default=None, description="when its newest version was recorded")


AuditAction = Literal["purge", "delete", "retention"]


class AuditRecord(_Model):
    """One row of the append-only audit log: a purge, a delete or a retention removal."""

    id: int
    at: datetime
    who: str
    action: AuditAction
    target: str = Field(description="what was removed: a version REF, or what a purge selected")
    reason: str | None = None
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="a purge's `digests`, `versions` it touched, `files` marked, `references` reported",
    )


class RetentionPolicy(_Model):
    """Which versions `headwater gc --apply-retention` removes: of an artifact `name`, or of
    every artifact of a `type`, those beyond the newest `keep_last` and older than `older_than_s`
    (either alone is enough). A version holding an alias is never removed, nor, with
    `protect_lineage`, one that an aliased version was built from."""

    selector: Literal["name", "type"]
    value: str
    keep_last: int | None = None
    older_than_s: float | None = None
    protect_lineage: bool = True
    set_at: datetime | None = None
    who: str = ""


class Version(_Model):
    """One immutable content of an artifact: `name:vN` (or `name@digest` before delivery), its
    files (`entries`), aliases, tags, metadata and the runs that produced it."""

    name: str
    type: str | None = None
    label: str | None = Field(default=None, description="v0, v1, ...; None while still in the outbox")
    digest: str
    aliases: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    entries: list[ManifestEntry] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None
    size: int = 0
    files: int = Field(default=0, description="how many entries, also where `entries` is not loaded (lists)")
    created_at: datetime | None = None
    produced_by: str | None = None
    producers: list[str] = Field(default_factory=list)
    deleted: bool = False
    purged: list[str] = Field(
        default_factory=list, description="paths of the entries whose bytes were purged (as recorded, maybe redacted)"
    )
    purges: list[AuditRecord] = Field(default_factory=list, description="the purges that removed them")

    _client: Client | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        # A committed version is immutable (like a committed W&B artifact): say so clearly.
        if not name.startswith("_") and self.label is not None:
            from headwater.errors import Conflict

            raise Conflict(f"{self.ref} is committed and immutable: log a new version instead of setting {name!r}")
        super().__setattr__(name, value)

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        # `ref` is computed; JSON that carries it (the CLI's, the server's) must still load.
        if isinstance(data, dict) and "ref" in data:
            data = {k: v for k, v in data.items() if k != "ref"}
        if isinstance(data, dict) and "files" not in data and data.get("entries"):
            data = {**data, "files": len(data["entries"])}
        return data

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented use; mypy does not know it
    @property
    def ref(self) -> str:
        if self.label is not None:
            return f"{self.name}:{self.label}"
        return f"{self.name}@{self.digest}"

    @property
    def path(self) -> Path | None:
        """The local path of a single-`file://`-reference version, else None (use download())."""
        from headwater.refs import file_uri_to_path

        roots = {e.ref for e in self.entries if e.ref}
        if self.entries and len(roots) == len(self.entries) and all(r.startswith("file://") for r in roots):
            if len(self.entries) == 1:
                return file_uri_to_path(self.entries[0].ref or "")
            if self.name.startswith("file://"):
                return file_uri_to_path(self.name)
        return None

    def download(self, dest: str | Path | None = None, entry: str | None = None) -> Path:
        """Restore the bytes (verified) into `dest`, or the cache under $HEADWATER_HOME/cache."""
        if self._client is None:
            from headwater.api import default_client

            client = default_client()
        else:
            client = self._client
        return client.download(self, dest=dest, entry=entry)

    def __str__(self) -> str:
        return self.ref


class Run(_Model):
    """One execution of a job (a task, a container, a manual run): the versions it used
    (`inputs`) and produced (`outputs`), its status, params and times."""

    id: str
    job: str
    job_namespace: str = "default"
    orchestrator: str = "manual"
    kind: RunKind = "manual"
    status: RunStatus = "running"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    inexact: list[str] = Field(
        default_factory=list, description="inputs and outputs whose edge is not to the exact version (exact=false)"
    )
    error: str | None = None
    code: dict[str, Any] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict)


class Edge(_Model):
    """A run used (`direction="used"`) or produced a version; `exact=False` when the edge may
    not be to that exact version (an input recorded by name, not by content)."""

    run_id: str
    version: str = Field(description="ref of the version, name:vN")
    direction: Direction
    exact: bool = True
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    inputs: list[str] = Field(
        default_factory=list,
        description="on an output edge: refs of the run's inputs that made this version, where the "
        "orchestrator or the user said so; empty: every input of the run (the fallback)",
    )


class AliasMove(_Model):
    """One entry of an alias's history; `version` is None when the alias was removed."""

    name: str
    alias: str
    version: str | None
    at: datetime


class LineageGraph(_Model):
    """Versions, the runs between them and their edges, walked from `root` (`hw.upstream`,
    `hw.downstream`, `hw.path`).

    `str(graph)` is the tree `headwater upstream`/`downstream` prints; in Jupyter it shows as a
    Mermaid picture. `to_mermaid()`, `to_dot()`, `to_dict()` and `to_networkx()` export it.
    """

    root: str | None = None
    direction: Literal["upstream", "downstream", "both", "path"] | None = None
    versions: list[Version] = Field(default_factory=list)
    runs: list[Run] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    depth: dict[str, int] = Field(default_factory=dict, description="version ref -> hops from root")

    def __contains__(self, ref: object) -> bool:
        if isinstance(ref, Version):
            ref = ref.ref
        return any(v.ref == ref for v in self.versions) or any(r.id == ref for r in self.runs)

    def flow_edges(self) -> list[tuple[str, str, Direction, bool]]:
        """Each edge once, between nodes this graph holds: (version ref, run id, direction,
        exact), sorted. An edge recorded twice is exact only if both records are."""
        versions = {v.ref for v in self.versions}
        runs = {r.id for r in self.runs}
        found: dict[tuple[str, str, Direction], bool] = {}
        for edge in self.edges:
            if edge.version in versions and edge.run_id in runs:
                key = (edge.version, edge.run_id, edge.direction)
                found[key] = found.get(key, True) and edge.exact
        return [(ref, run_id, direction, exact) for (ref, run_id, direction), exact in sorted(found.items())]

    def made_from(self) -> dict[tuple[str, str], list[str]]:
        """(run id, output ref) -> the refs of the inputs the run said made that output, for the
        outputs it said so of; an output absent here was made from every input of its run."""
        found: dict[tuple[str, str], list[str]] = {}
        for edge in self.edges:
            if edge.direction == "produced" and edge.inputs:
                found[(edge.run_id, edge.version)] = sorted(set(edge.inputs))
        return found

    def __str__(self) -> str:
        """The tree `headwater upstream` / `headwater downstream` prints, without colour."""
        from headwater import render

        return render.plain_text(render.lineage_tree(self))

    def __repr__(self) -> str:
        def count(n: int, noun: str) -> str:
            return f"{n} {noun}{'' if n == 1 else 's'}"

        return (
            f"LineageGraph(root={self.root!r}, direction={self.direction!r}, "
            f"{count(len(self.versions), 'version')}, {count(len(self.runs), 'run')}, "
            f"{count(len(self.edges), 'edge')})"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict[str, str]:
        """What Jupyter shows: a Mermaid picture (JupyterLab 4.1+ renders ```mermaid blocks),
        the tree in a <pre> (classic notebooks) and as plain text."""
        import html

        tree = str(self)
        bundle = {
            "text/plain": tree,
            "text/markdown": f"```mermaid\n{self.to_mermaid()}```\n",
            "text/html": f"<pre>{html.escape(tree)}</pre>",
        }
        if include:
            bundle = {k: v for k, v in bundle.items() if k in include}
        if exclude:
            bundle = {k: v for k, v in bundle.items() if k not in exclude}
        return bundle

    def to_mermaid(self) -> str:
        """A Mermaid flowchart, as `headwater graph REF --format mermaid` prints it."""
        from headwater import render

        return render.mermaid(self)

    def to_dot(self) -> str:
        """A Graphviz digraph, as `headwater graph REF --format dot` prints it."""
        from headwater import render

        return render.dot(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (`model_dump(mode="json")`); `LineageGraph.model_validate` loads it
        back."""
        return self.model_dump(mode="json")

    def to_networkx(self) -> Any:
        """A `networkx.DiGraph` in data-flow direction (needs `pip install networkx`).

        Nodes: each version by ref (kind="version", name, label, type, digest) and each run by id
        (kind="run", job, orchestrator, status). Edges: version -> run it was used by, run ->
        version it produced, each with `exact`. The graph's `root` and `direction` are graph
        attributes.
        """
        try:
            import networkx as nx
        except ImportError:
            from headwater.errors import InvalidInput

            message = "LineageGraph.to_networkx() needs networkx: pip install networkx"
            raise InvalidInput(message) from None
        digraph: nx.DiGraph[str] = nx.DiGraph(root=self.root, direction=self.direction)
        for version in self.versions:
            digraph.add_node(
                version.ref,
                kind="version",
                name=version.name,
                label=version.label,
                type=version.type,
                digest=version.digest,
            )
        for run in self.runs:
            digraph.add_node(run.id, kind="run", job=run.job, orchestrator=run.orchestrator, status=run.status)
        for ref, run_id, direction, exact in self.flow_edges():
            digraph.add_edge(*((ref, run_id) if direction == "used" else (run_id, ref)), exact=exact)
        return digraph


class Diff(_Model):
    """What changed between two versions: entry paths added, removed and changed, and metadata."""

    left: str
    right: str
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    unchanged: int = 0
    # [left, right] per path added, removed or changed (None on the side that lacks it)
    sizes: dict[str, list[int | None]] = Field(default_factory=dict)
    # [left, right] per version metadata key whose value differs (None: absent on that side)
    metadata: dict[str, list[Any]] = Field(default_factory=dict)


class Reachable(_Model):
    """The refs a walk from `root` reaches (`hw.reachable`): what `hw.upstream` or
    `hw.downstream` would hold, without the fields of each node, for closures too large to read
    as a graph. `versions` maps each version's ref to its hops from `root` (ordered by hops, then
    name and label); `runs` maps the id of each run the walk passes to the hop it makes (ordered
    by hop, then id): on a downstream walk every run that used a reached version, 1 for one that
    used the root; on an upstream one every run that produced one. The graph of the same walk
    at depth d holds the versions and runs of hops up to d."""

    root: str
    direction: Literal["upstream", "downstream"]
    versions: dict[str, int] = Field(default_factory=dict, description="version ref -> hops from root")
    runs: dict[str, int] = Field(
        default_factory=dict, description="run id -> the hop it makes (1: it used or produced the root)"
    )

    def __contains__(self, ref: object) -> bool:
        if isinstance(ref, Version):
            ref = ref.ref
        return ref in self.versions or ref in self.runs


class Impact(_Model):
    """The versions that hold some content (`holding`) and everything built from them
    (`downstream`)."""

    holding: list[Version] = Field(default_factory=list)
    downstream: LineageGraph = Field(default_factory=LineageGraph)


class VerifyReport(_Model):
    """The result of re-hashing a version's entries: which are missing, changed or drifted."""

    ref: str
    ok: bool
    missing: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    drifted: list[str] = Field(default_factory=list, description="references whose checksum moved")
    unchecked: list[str] = Field(default_factory=list, description="entries recorded without a checksum")
    checked: int = 0


DriftStatus = Literal["changed", "drifted", "missing", "unreachable"]


class Drift(_Model):
    """One referenced entry whose location no longer holds what was recorded (`hw.status`,
    `headwater status`, `--check`): `changed` (a local or readable file's bytes), `drifted`
    (the storage's checksum: ETag, version id, generation, size and mtime), `missing`, or
    `unreachable` (the storage could not be asked)."""

    version: str = Field(description="ref of the version, name:vN")
    path: str = Field(description="the entry's path in the version")
    ref: str = Field(description="where the entry points (its URI)")
    digest: str = Field(description="the checksum recorded")
    status: DriftStatus
    detail: str | None = None
