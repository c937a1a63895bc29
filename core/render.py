"""Pure rendering for the `headwater` command: tables, lineage trees, Mermaid/DOT text and JSON.

Nothing here talks to a store or prints: each function turns headwater models into a rich
renderable or a string, so the CLI only parses, dispatches and prints. Labels are built as
`rich.text.Text`, never as markup strings, so a name holding `[` prints as typed.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from headwater.models import (
    AliasMove,
    Artifact,
    AuditRecord,
    Diff,
    Drift,
    Impact,
    LineageGraph,
    Run,
    VerifyReport,
    Version,
)

if TYPE_CHECKING:
    from headwater.purge import PurgePlan

__all__ = [
    "alias_moves_table",
    "artifacts_table",
    "diff_view",
    "dot",
    "drift_view",
    "fmt_size",
    "fmt_time",
    "impact_view",
    "lineage_tree",
    "mermaid",
    "plain_text",
    "run_detail",
    "run_label",
    "runs_table",
    "settings_table",
    "short_digest",
    "short_id",
    "to_json",
    "to_jsonable",
    "verify_view",
    "version_detail",
    "version_label",
    "versions_table",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "aborted": "red",
    "running": "yellow",
    "skipped": "dim",
}
SEE_ABOVE = "(see above)"
PLAIN_WIDTH = 4096  # wide enough that nothing wraps: what `headwater ... | cat` prints


# --- small formatters --------------------------------------------------------------------------


def short_id(run_id: str) -> str:
    """The part of a run id shown in tables and trees: its last group.

    Manual run ids are uuid7, whose leading hex digits are a timestamp (runs made within the same
    minute share them); the last group is random in uuid7 and uuid5 alike.
    """
    return run_id.rsplit("-", 1)[-1] if "-" in run_id else run_id[:12]


def short_digest(digest: str, n: int = 12) -> str:
    algo, sep, rest = digest.partition(":")
    if sep and algo == "blake3":
        return f"{algo}:{rest[:n]}"
    return digest if len(digest) <= 32 else digest[:31] + "…"


def fmt_time(when: datetime | None) -> str:
    if when is None:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _label_key(version: Version) -> tuple[str, int, str]:
    number = int(version.label[1:]) if version.label else -1
    return (version.name, number, version.digest)


def _run_key(run: Run) -> tuple[datetime, str, str]:
    when = run.started_at or _EPOCH
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when, run.job, run.id)


def _table(*columns: str) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column, no_wrap=False, overflow="fold")
    return table


def _fields(rows: Iterable[tuple[str, RenderableType | str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value if not isinstance(value, str) else Text(value))
    return grid


def _heading(text: str) -> Text:
    return Text(text, style="bold underline")


# --- labels ------------------------------------------------------------------------------------


def version_label(version: Version, *, exact: bool = True, drifted: Collection[str] = ()) -> Text:
    """`drifted`: refs of versions whose references changed (`--check`), marked here."""
    text = Text(version.ref, style="bold cyan")
    if version.type:
        text.append(f" ({version.type})")
    if version.aliases:
        text.append(" [" + ", ".join(version.aliases) + "]", style="magenta")
    if version.deleted:
        text.append(" deleted", style="red")
    if not exact:
        text.append(" (not exact)", style="yellow")
    if version.ref in drifted:
        text.append(" DRIFTED", style="bold yellow")
    return text


def drift_view(drifts: Sequence[Drift], checked: int) -> Group:
    """What `status` and `--check` found: each referenced entry whose location changed."""
    noun = "version" if checked == 1 else "versions"
    if not drifts:
        return Group(Text(f"nothing drifted ({checked} {noun} checked)", style="green"))
    table = _table("VERSION", "PATH", "STATUS", "REF")
    for drift in sorted(drifts, key=lambda d: (d.version, d.path)):
        style = "yellow" if drift.status == "drifted" else "red"
        table.add_row(
            Text(drift.version, style="cyan"), Text(drift.path), Text(drift.status, style=style), Text(drift.ref)
        )
    heading = _heading(f"drifted references ({len(drifts)}, {checked} {noun} checked)")
    return Group(heading, table)


def run_label(run: Run) -> Text:
    text = Text()
    text.append(run.job, style="bold")
    text.append(" (")
    text.append(run.orchestrator)
    text.append(", ")
    text.append(run.status, style=_STATUS_STYLE.get(run.status, ""))
    text.append(")")
    text.append(f" run {short_id(run.id)}", style="dim")
    return text


def _run_or_id(run_id: str, runs: Mapping[str, Run | None]) -> Text:
    run = runs.get(run_id)
    if run is None:
        return Text(f"run {run_id}", style="dim")
    return run_label(run)


# --- tables ------------------------------------------------------------------------------------


def artifacts_table(artifacts: Sequence[Artifact]) -> Table:
    table = _table("NAME", "TYPE", "LATEST", "VERSIONS")
    for art in artifacts:
        table.add_row(Text(art.name, style="cyan"), art.type or "-", art.latest or "-", str(art.versions))
    return table


def versions_table(versions: Sequence[Version]) -> Table:
    table = _table("VERSION", "DIGEST", "SIZE", "CREATED", "ALIASES", "TAGS", "PRODUCED BY")
    for version in versions:
        label = Text(version.label or "-", style="cyan")
        if version.deleted:
            label.append(" deleted", style="red")
        table.add_row(
            label,
            short_digest(version.digest),
            fmt_size(version.size),
            fmt_time(version.created_at),
            Text(", ".join(version.aliases) or "-"),
            Text(", ".join(version.tags) or "-"),
            short_id(version.produced_by) if version.produced_by else "-",
        )
    return table


def _refs_cell(refs: Sequence[str], limit: int = 3) -> Text:
    if not refs:
        return Text("-")
    shown = ", ".join(refs[:limit])
    if len(refs) > limit:
        shown += f" +{len(refs) - limit} more"
    return Text(shown)


def runs_table(runs: Sequence[Run], *, with_versions: bool = True) -> Table:
    """One row per run; `with_versions=False` leaves out the inputs and outputs (shown elsewhere)."""
    columns = ["RUN", "JOB", "NAMESPACE", "ORCHESTRATOR", "STATUS", "STARTED"]
    table = _table(*columns, *(["INPUTS", "OUTPUTS"] if with_versions else []))
    for run in runs:
        cells: list[RenderableType] = [
            short_id(run.id),
            Text(run.job, style="bold"),
            Text(run.job_namespace),
            run.orchestrator,
            Text(run.status, style=_STATUS_STYLE.get(run.status, "")),
            fmt_time(run.started_at),
        ]
        if with_versions:
            cells += [_refs_cell(run.inputs), _refs_cell(run.outputs)]
        table.add_row(*cells)
    return table


# --- one object ----------------------------------------------------------------------------------


def version_detail(
    version: Version,
    producers: Mapping[str, Run | None] | None = None,
    *,
    at: datetime | None = None,
    drift: Sequence[Drift] | None = None,
) -> Group:
    """Every field of a version, then its entries; with `drift` (`show --check`), each entry's
    status."""
    producers = producers or {}
    rows: list[tuple[str, RenderableType | str]] = [
        ("ref", Text(version.ref, style="bold cyan")),
        ("name", version.name),
        ("type", version.type or "-"),
        ("label", version.label or "- (not delivered yet)"),
        ("digest", version.digest),
        (
            "size",
            f"{fmt_size(version.size)} in {len(version.entries)} entr{'y' if len(version.entries) == 1 else 'ies'}",
        ),
        ("created", fmt_time(version.created_at)),
    ]
    if at is not None:
        rows.append(("resolved at", fmt_time(at)))
    rows.append(("aliases", ", ".join(version.aliases) or "-"))
    rows.append(("tags", ", ".join(version.tags) or "-"))
    if version.description:
        rows.append(("description", version.description))
    if version.deleted:
        rows.append(("deleted", Text("yes: lineage kept, content may be collected", style="red")))
    if version.purged:
        rows.append(("purged", Text(purged_note(version), style="red")))
    rows.append(("produced by", _run_or_id(version.produced_by, producers) if version.produced_by else "-"))
    others = [p for p in version.producers if p != version.produced_by]
    for index, run_id in enumerate(others):
        rows.append(("also produced by" if index == 0 else "", _run_or_id(run_id, producers)))
    columns = _column_rows(version.metadata.get("columnLineage"))
    shown = {k: v for k, v in version.metadata.items() if not (columns and k == "columnLineage")}
    if shown:
        for index, (key, value) in enumerate(sorted(shown.items())):
            rows.append(("metadata" if index == 0 else "", Text(f"{key} = {_compact(value)}")))
    else:
        rows.append(("metadata", "-"))
    for index, line in enumerate(columns):
        rows.append(("columns" if index == 0 else "", Text(line)))
    parts: list[RenderableType] = [_fields(rows)]
    parts.append(Text(""))
    parts.append(_heading(f"entries ({len(version.entries)})"))
    if version.entries:
        purged_paths = set(version.purged)
        status = {d.path: d.status for d in drift or ()}
        table = _table("PATH", "SIZE", "DIGEST", "REF", *(("STATUS",) if drift is not None else ()))
        for entry in version.entries:
            checked = entry.ref is not None and not entry.digest.startswith(("ol:", "unverified:"))
            found = status.get(entry.path, "ok" if checked else "-")
            style = {"ok": "green", "-": "dim", "drifted": "yellow"}.get(found, "red")
            table.add_row(
                Text(entry.path),
                fmt_size(entry.size),
                short_digest(entry.digest),
                Text(entry.ref or ("purged" if entry.path in purged_paths else "stored")),
                *((Text(found, style=style),) if drift is not None else ()),
            )
        parts.append(table)
    return Group(*parts)


def _column_rows(facet: Any) -> list[str]:
    """`field <- namespace/name.field (TYPE), ...` per output field of an OpenLineage
    columnLineage facet kept in a version's metadata; nothing when it is not that shape."""
    if not isinstance(facet, dict) or not isinstance(facet.get("fields"), dict):
        return []
    lines = []
    for name, spec in sorted(facet["fields"].items()):
        sources = []
        for item in (spec.get("inputFields") or []) if isinstance(spec, dict) else []:
            if not isinstance(item, dict):
                continue
            kinds = sorted(
                {str(t["type"]) for t in item.get("transformations") or [] if isinstance(t, dict) and t.get("type")}
            )
            where = f"{item.get('namespace')}/{item.get('name')}.{item.get('field')}"
            sources.append(where + (f" ({', '.join(kinds)})" if kinds else ""))
        lines.append(f"{name} <- {', '.join(sources) or '-'}")
    return lines


def run_detail(run: Run) -> Group:
    rows: list[tuple[str, RenderableType | str]] = [
        ("run", Text(run.id, style="bold")),
        ("job", Text(run.job, style="bold")),
        ("namespace", run.job_namespace),
        ("orchestrator", run.orchestrator),
        ("kind", run.kind),
        ("status", Text(run.status, style=_STATUS_STYLE.get(run.status, ""))),
        ("started", fmt_time(run.started_at)),
        ("ended", fmt_time(run.ended_at)),
    ]
    if run.parent_id:
        rows.append(("parent", run.parent_id))
    if run.error:
        rows.append(("error", Text(run.error, style="red")))
    for title, mapping in (("params", run.params), ("links", run.links), ("code", run.code)):
        for index, (key, value) in enumerate(sorted(mapping.items())):
            rows.append((title if index == 0 else "", Text(f"{key} = {_compact(value)}")))
    rows.extend(_io_rows(run))
    return Group(_fields(rows))


def _io_rows(run: Run) -> list[tuple[str, RenderableType | str]]:
    rows: list[tuple[str, RenderableType | str]] = []
    for title, refs in (("used", run.inputs), ("produced", run.outputs)):
        if not refs:
            rows.append((title, "-"))
        for index, ref in enumerate(refs):
            rows.append((title if index == 0 else "", Text(ref, style="cyan")))
    return rows


def logged_run(run: Run) -> Group:
    """What `headwater log` prints: the run id, then what it used and produced."""
    head = Text("run ")
    head.append(run.id, style="bold")
    head.append(f" ({run.job}, ")
    head.append(run.status, style=_STATUS_STYLE.get(run.status, ""))
    head.append(")")
    return Group(head, _fields(_io_rows(run)))


# --- lineage -------------------------------------------------------------------------------------


class _Walk:
    """Adjacency of a lineage graph in the direction it was walked, deterministically ordered."""

    def __init__(self, graph: LineageGraph, direction: str | None = None) -> None:
        self.direction = direction or graph.direction or "upstream"
        self.versions = {v.ref: v for v in graph.versions}
        self.runs = {r.id: r for r in graph.runs}
        # upstream: version <- run that produced it <- versions that run used
        to_run, to_version = ("produced", "used") if self.direction == "upstream" else ("used", "produced")
        runs_of: dict[str, set[str]] = defaultdict(set)
        versions_of: dict[str, dict[str, bool]] = defaultdict(dict)
        # (run, output) -> the inputs the run says made it; an output absent here: all of them
        self.made_from = {key: set(refs) for key, refs in graph.made_from().items()}
        for edge in graph.edges:
            if edge.run_id not in self.runs or edge.version not in self.versions:
                continue
            if edge.direction == to_run:
                runs_of[edge.version].add(edge.run_id)
            if edge.direction == to_version:
                versions_of[edge.run_id][edge.version] = edge.exact
        self.runs_of = {ref: sorted(ids, key=lambda i: _run_key(self.runs[i])) for ref, ids in runs_of.items()}
        self.versions_of = {
            rid: sorted(found.items(), key=lambda item: _label_key(self.versions[item[0]]))
            for rid, found in versions_of.items()
        }


def lineage_tree(
    graph: LineageGraph, *, depth: int | None = None, direction: str | None = None, drifted: Collection[str] = ()
) -> Tree:
    """An indented tree from the root version: version -> run -> versions -> run ...

    A node printed before shows "(see above)" instead of its subtree again (lineage can have
    cycles and diamonds). `depth` counts runs from the root, as in `Client.upstream(depth=)`.
    """
    walk = _Walk(graph, direction)
    root_ref = graph.root or (graph.versions[0].ref if graph.versions else None)
    if root_ref is None or root_ref not in walk.versions:
        return Tree(Text("(empty lineage)"))
    seen: set[str] = set()
    tree = Tree(version_label(walk.versions[root_ref], drifted=drifted), guide_style="dim")
    seen.add(root_ref)

    def expand_version(node: Tree, ref: str, hops: int) -> None:
        if depth is not None and hops >= depth:
            return
        for run_id in walk.runs_of.get(ref, ()):
            label = run_label(walk.runs[run_id])
            key = "run:" + run_id
            if key in seen:
                node.add(label.append(" " + SEE_ABOVE, style="dim"))
                continue
            seen.add(key)
            expand_run(node.add(label), run_id, hops + 1, ref)

    def expand_run(node: Tree, run_id: str, hops: int, came_from: str) -> None:
        for ref, exact in walk.versions_of.get(run_id, ()):
            output, source = (came_from, ref) if walk.direction == "upstream" else (ref, came_from)
            if source not in walk.made_from.get((run_id, output), {source}):
                continue  # the run says this output was made from its other inputs
            label = version_label(walk.versions[ref], exact=exact, drifted=drifted)
            if ref in seen:
                node.add(label.append(" " + SEE_ABOVE, style="dim"))
                continue
            seen.add(ref)
            expand_version(node.add(label), ref, hops)

    expand_version(tree, root_ref, 0)
    return tree


def _node_ids(graph: LineageGraph) -> tuple[list[Version], list[Run], dict[str, str]]:
    versions = sorted(graph.versions, key=lambda v: (graph.depth.get(v.ref, 0), *_label_key(v)))
    runs = sorted(graph.runs, key=_run_key)
    ids: dict[str, str] = {}
    for index, version in enumerate(versions):
        ids[version.ref] = f"v{index}"
    for index, run in enumerate(runs):
        ids["run:" + run.id] = f"r{index}"
    return versions, runs, ids


def _graph_edges(graph: LineageGraph) -> list[tuple[str, str, bool, str]]:
    """(source node key, target node key, exact, label) in data-flow direction, sorted. An output
    the run said was made from some of its inputs only is labelled "from <those inputs>"."""
    made_from = graph.made_from()
    found = []
    for ref, run_id, direction, exact in graph.flow_edges():
        run_key = "run:" + run_id
        if direction == "used":
            found.append(((ref, run_key), exact, ""))
        else:
            inputs = made_from.get((run_id, ref))
            found.append(((run_key, ref), exact, "from " + ", ".join(inputs) if inputs else ""))
    return [(a, b, exact, label) for (a, b), exact, label in sorted(found)]


def _mermaid_text(text: str) -> str:
    for raw, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return text.replace("\n", " ")


def mermaid(graph: LineageGraph) -> str:
    """A Mermaid flowchart, data flowing left to right: versions are boxes, runs hexagons."""
    versions, runs, ids = _node_ids(graph)
    lines = ["flowchart LR"]
    for version in versions:
        lines.append(f'    {ids[version.ref]}["{_mermaid_text(version.ref)}"]')
    for run in runs:
        text = f"{run.job} ({run.orchestrator}, {run.status}) {short_id(run.id)}"
        lines.append(f'    {ids["run:" + run.id]}{{{{"{_mermaid_text(text)}"}}}}')
    for source, target, exact, label in sorted(_graph_edges(graph), key=lambda e: (ids[e[0]], ids[e[1]])):
        arrow = "-->" if exact else "-.->"
        text = f'|"{_mermaid_text(label)}"|' if label else ""
        lines.append(f"    {ids[source]} {arrow}{text} {ids[target]}")
    if graph.root and graph.root in ids:
        lines.append(f"    style {ids[graph.root]} stroke-width:3px")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(graph: LineageGraph) -> str:
    """A Graphviz digraph: node ids are the version refs and `run:<run id>`."""
    versions, runs, _ = _node_ids(graph)
    lines = [
        "digraph lineage {",
        "    rankdir=LR;",
        '    node [fontname="Helvetica", fontsize=10];',
    ]
    for version in versions:
        attrs = [f"label={_dot_text(version.ref)}", "shape=box"]
        if version.ref == graph.root:
            attrs.append("penwidth=2")
        lines.append(f"    {_dot_text(version.ref)} [{', '.join(attrs)}];")
    for run in runs:
        text = f"{run.job}\n({run.orchestrator}, {run.status})\n{short_id(run.id)}"
        lines.append(f"    {_dot_text('run:' + run.id)} [label={_dot_text(text)}, shape=ellipse];")
    for source, target, exact, label in _graph_edges(graph):
        attrs = ([] if exact else ["style=dashed"]) + ([f"label={_dot_text(label)}", "fontsize=8"] if label else [])
        style = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {_dot_text(source)} -> {_dot_text(target)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- aliases and settings ------------------------------------------------------------------------


def alias_moves_table(moves: Sequence[AliasMove], *, history: bool) -> Table:
    """Every move (TIME, ALIAS, VERSION or removed), or each alias where it is now and since when."""
    if history:
        table = _table("TIME", "ALIAS", "VERSION")
        for move in moves:
            version = Text(move.version or "removed", style="cyan" if move.version else "red")
            table.add_row(fmt_time(move.at), Text(move.alias, style="magenta"), version)
        return table
    table = _table("ALIAS", "VERSION", "SINCE")
    for move in moves:
        table.add_row(Text(move.alias, style="magenta"), Text(move.version or "-", style="cyan"), fmt_time(move.at))
    return table


def settings_table(rows: Iterable[tuple[str, str, str]]) -> Table:
    """(setting, value as shown, where it came from) as `headwater config` prints them."""
    table = _table("SETTING", "VALUE", "SOURCE")
    for name, value, source in rows:
        table.add_row(name, Text(value or "-"), source)
    return table


# --- diff, impact, verify ------------------------------------------------------------------------


def diff_view(diff: Diff) -> Group:
    marks = [(p, "+", "green") for p in diff.added]
    marks += [(p, "-", "red") for p in diff.removed]
    marks += [(p, "~", "yellow") for p in diff.changed]
    lines: list[RenderableType] = [Text(f"{diff.left} -> {diff.right}", style="bold")]
    for path, mark, style in sorted(marks):
        before, after = diff.sizes.get(path, [None, None])
        known = [n for n in (before, after) if n is not None]
        unit = "byte" if known == [1] else "bytes"
        sizes = f"  {' -> '.join(f'{n:,}' for n in known)} {unit}" if known else ""
        lines.append(Text(f"{mark} {path}", style=style).append(sizes, style="dim"))
    lines.append(
        Text(
            f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
            f"{diff.unchanged} unchanged"
        )
    )
    for key, (before, after) in diff.metadata.items():
        shown = " -> ".join("(none)" if v is None else json.dumps(v) for v in (before, after))
        lines.append(Text(f"metadata {key}: {shown}"))
    return Group(*lines)


def impact_view(
    impact: Impact, what: str, downstream_runs: Sequence[Run] | None = None, drifted: Collection[str] = ()
) -> Group:
    """Versions holding the content, then what must be retrained, rebuilt and re-run."""
    holding_refs = {v.ref for v in impact.holding}
    graph = impact.downstream
    if not impact.holding:
        return Group(Text(f"no version holds {what}"))
    parts: list[RenderableType] = [_heading(f"holding {what} ({len(impact.holding)})")]
    for version in sorted(impact.holding, key=_label_key):
        parts.append(Text("  ").append_text(version_label(version, drifted=drifted)))
    affected = [v for v in graph.versions if v.ref not in holding_refs]
    affected.sort(key=lambda v: (graph.depth.get(v.ref, 0), *_label_key(v)))
    models = [v for v in affected if (v.type or "").lower() == "model"]
    others = [v for v in affected if (v.type or "").lower() != "model"]
    for title, group in (("models to retrain", models), ("other versions to rebuild", others)):
        parts.append(Text(""))
        parts.append(_heading(f"{title} ({len(group)})"))
        if group:
            table = _table("VERSION", "TYPE", "HOPS", "ALIASES")
            for version in group:
                table.add_row(
                    version_label(version, drifted=drifted)
                    if version.ref in drifted
                    else Text(version.ref, style="cyan"),
                    version.type or "-",
                    str(graph.depth.get(version.ref, "-")),
                    Text(", ".join(version.aliases) or "-"),
                )
            parts.append(table)
    runs = sorted(downstream_runs if downstream_runs is not None else graph.runs, key=_run_key)
    parts.append(Text(""))
    parts.append(_heading(f"runs to re-run ({len(runs)})"))
    if runs:
        parts.append(runs_table(runs, with_versions=False))  # the versions are listed above
    return Group(*parts)


def purged_note(version: Version) -> str:
    """`purged: N files` with the reason, time and who of each purge."""
    count = len(version.purged)
    why = "; ".join(f"{fmt_time(p.at)} by {p.who}: {p.reason}" for p in version.purges)
    return f"{count} file{'' if count == 1 else 's'} ({why}); lineage kept, bytes gone"


def purge_view(plan: PurgePlan, *, done: bool) -> Group:
    """What a purge removes (a dry run) or removed."""
    verb = "purged" if done else "would purge"
    parts: list[RenderableType] = [
        _heading(f"{verb}: {plan.selection}"),
        Text(f"  {plan.files} file(s) in {len(plan.holding)} version(s): {', '.join(plan.holding) or '-'}"),
        Text(f"  content: {', '.join(short_digest(d) for d in plan.digests)}"),
    ]
    blobs = getattr(plan, "removed_blobs", plan.blobs) if done else plan.blobs
    cached = getattr(plan, "removed_cached", plan.cached) if done else plan.cached
    parts.append(Text(f"  blobs {'removed' if done else 'to remove'}: {len(blobs)}"))
    server = getattr(plan, "removed_server_blobs", None)
    if server:
        parts.append(Text(f"  tracking server blobs removed: {len(server)}"))
    parts.append(Text(f"  cached copies {'removed' if done else 'to remove'}: {len(cached)}"))
    for path in cached:
        parts.append(Text(f"    {path}"))
    if plan.references:
        parts.append(Text("  referenced objects, not headwater's to delete (remove those that hold it):"))
        for ref in plan.references:
            status = plan.reference_status.get(ref, "unknown")
            parts.append(Text(f"    {ref}  ({status})", style="yellow" if status == "holds it" else ""))
    record = getattr(plan, "record", None)
    if record is not None:
        parts.append(Text(f"  audit record #{record.id}: {fmt_time(record.at)} by {record.who}: {record.reason}"))
    parts.append(Text(""))
    parts.append(impact_view(plan.impact, "the purged content"))
    return Group(*parts)


def audit_table(records: Sequence[AuditRecord]) -> Table:
    table = _table("#", "WHEN", "WHO", "ACTION", "TARGET", "REASON", "DETAILS")
    for record in records:
        details = record.details
        summary = (
            f"{details.get('files', 0)} file(s) in {len(details.get('versions', []))} version(s)"
            if record.action == "purge"
            else _compact(details)
            if details
            else "-"
        )
        table.add_row(
            str(record.id),
            fmt_time(record.at),
            Text(record.who),
            record.action,
            Text(record.target),
            Text(record.reason or "-"),
            Text(summary),
        )
    return table


def verify_view(report: VerifyReport) -> Group:
    if report.ok:
        noun = "entry" if report.checked == 1 else "entries"
        return Group(Text(f"{report.ref}: ok ({report.checked} {noun} checked)", style="green"))
    bad = len(report.missing) + len(report.changed) + len(report.drifted)
    lines: list[RenderableType] = [Text(f"{report.ref}: FAILED ({bad} of {report.checked} entries)", style="bold red")]
    rows = [(p, "-", "missing") for p in report.missing]
    rows += [(p, "~", "changed") for p in report.changed]
    rows += [(p, "!", "drifted") for p in report.drifted]
    for path, mark, what in sorted(rows):
        lines.append(Text(f"{mark} {path}  {what}", style="red" if what != "drifted" else "yellow"))
    return Group(*lines)


# --- plain text ----------------------------------------------------------------------------------


def plain_text(*renderables: RenderableType, width: int = PLAIN_WIDTH) -> str:
    """Renderables as text with no colour, as the `headwater` command prints them to a pipe:
    `width` columns (nothing wraps by default), trailing spaces cut, no final newline.

    The same Console settings as the command's when its output is not a terminal, except that it
    never draws into a notebook (`force_jupyter=False`): this only returns a string.
    """
    console = Console(
        file=io.StringIO(),
        no_color=True,
        force_terminal=False,
        force_jupyter=False,
        color_system=None,
        width=width,
        highlight=False,
        emoji=False,
        markup=False,
    )
    with console.capture() as captured:
        for item in renderables:
            console.print(item)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


# --- JSON ----------------------------------------------------------------------------------------


def _version_json(version: Version) -> dict[str, Any]:
    data = version.model_dump(mode="json")
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = value
        if key == "label":
            out["ref"] = version.ref  # a property on the model, part of the public contract
    return out


def to_jsonable(obj: Any) -> Any:
    """Pydantic models as `model_dump(mode="json")`, with each Version's `ref` included."""
    if isinstance(obj, Version):
        return _version_json(obj)
    if isinstance(obj, LineageGraph):
        data = obj.model_dump(mode="json")
        data["versions"] = [_version_json(v) for v in obj.versions]
        return data
    if isinstance(obj, Impact):
        return {
            "holding": [_version_json(v) for v in obj.holding],
            "downstream": to_jsonable(obj.downstream),
        }
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def to_json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False)
