"""The `headwater` command. It parses, calls `headwater.api.Client`, and prints via headwater.render.

Every command takes `--json` (machine-readable output on stdout). A `headwater.HeadwaterError`
becomes one line `headwater: error: <message>` on stderr (with `--json`, one JSON object) and the
error's exit code: the table in the `cli` group's help (`headwater --help`), the one place the
codes are documented.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import click
from rich.console import Console, RenderableType
from rich.text import Text

from headwater import __version__, render, times
from headwater.api import Client, Output
from headwater.errors import HeadwaterError, InvalidInput, NotFound, Unavailable
from headwater.models import AliasMove, Drift, Run
from headwater.refs import LATEST, is_uri
from headwater.store.base import ArtifactOrder

F = TypeVar("F", bound=Callable[..., Any])

_RUN_STATUSES = ("running", "succeeded", "failed", "skipped", "aborted")


# --- errors --------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"


def _error_text(error: str, message: str, exit_code: int, as_json: bool) -> str:
    """What stderr gets for an error: one plain line, or with --json one JSON object."""
    if as_json:
        return json.dumps(
            {"error": error, "message": _one_line(message), "exit_code": exit_code},
            ensure_ascii=False,
        )
    return f"headwater: error: {_one_line(message)}"


def _wants_json(args: Sequence[str]) -> bool:
    """Whether the command line has --json. Scanned rather than parsed, so that an error raised
    while click parses (a bad --limit before --json, an unknown option) is JSON too."""
    return "--json" in itertools.takewhile(lambda arg: arg != "--", args)


class _Failure(click.ClickException):
    """An error as click sees it: one line (or JSON object) on stderr, the error's exit code."""

    def __init__(self, error: str, message: str, exit_code: int, as_json: bool) -> None:
        super().__init__(_one_line(message))
        self.error = error
        self.exit_code = exit_code  # type: ignore[misc]  # a ClassVar in click's stubs
        self.as_json = as_json

    def show(self, file: Any = None) -> None:
        click.echo(_error_text(self.error, self.message, self.exit_code, self.as_json), err=True)


class _Warnings(logging.Handler):
    """Collects the library's warnings (an undelivered batch, ...) while a command runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = _one_line(record.getMessage())
        self.lines.append(text if text.startswith("headwater: ") else f"headwater: warning: {text}")


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:  # a nested group (`db`): the root handles errors
            return super().invoke(ctx)
        as_json = _wants_json(ctx.args)
        logger = logging.getLogger("headwater")
        warnings = _Warnings()
        logger.addHandler(warnings)
        failed = False
        try:
            return super().invoke(ctx)
        except HeadwaterError as err:
            # The error line says what went wrong; the library's warnings about the same
            # failure (a refused outbox batch) would only repeat it.
            failed = True
            raise _Failure(type(err).__name__, str(err), err.exit_code, as_json) from err
        except click.UsageError as err:
            if not as_json:
                raise  # click's own message, with the usage line
            failed = True
            raise _Failure(type(err).__name__, err.format_message(), err.exit_code, True) from err
        finally:
            logger.removeHandler(warnings)
            if not failed:
                for line in dict.fromkeys(warnings.lines):
                    click.echo(line, err=True)


# --- output --------------------------------------------------------------------------------------


def _show(*renderables: RenderableType) -> None:
    """On a terminal, with colour; to a pipe, the plain text LineageGraph.__str__ also prints."""
    if sys.stdout.isatty():
        console = Console(file=sys.stdout, highlight=False, emoji=False)
        for item in renderables:
            console.print(item)
        return
    click.echo(render.plain_text(*renderables))


def _print_json(obj: Any) -> None:
    click.echo(render.to_json(obj))


def _note(message: str) -> None:
    click.echo(f"headwater: {message}", err=True)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(func)


def _client(ctx: click.Context) -> Client:
    """One Client per invocation (--uri / --home, else HEADWATER_URI / HEADWATER_HOME), closed
    when the command ends."""
    root = ctx.find_root()
    client = root.meta.get("headwater.client")
    if client is None:
        client = Client(uri=root.meta.get("headwater.uri"), home=root.meta.get("headwater.home"))
        root.meta["headwater.client"] = client
        root.call_on_close(client.close)
    return client


def _with_client(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(_client(click.get_current_context()), *args, **kwargs)

    return cast(F, wrapper)


# --- parameter types -----------------------------------------------------------------------------


class IsoTime(click.ParamType):  # type: ignore[type-arg]  # generic only since click 8.2; we take 8.1
    """ISO 8601: 2024-03-01, 2024-03-01T12:00, 2024-03-01T12:00:00+01:00, ...Z. Naive means UTC."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return times.utc(value, "--at")
        try:
            return times.parse(str(value), "--at")
        except InvalidInput as err:
            self.fail(str(err), param, ctx)


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only since click 8.2; we take 8.1
    """90s, 30m, 24h, 7d or a number of seconds; as seconds."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from headwater import config

        if isinstance(value, float):
            return value
        try:
            return config.duration_s(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


def _pairs(
    meta: str,
) -> Callable[[click.Context, click.Parameter, Sequence[str]], list[tuple[str, str]]]:
    """A callback splitting repeated `KEY=VALUE` values at the first '='."""

    def split(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> list[tuple[str, str]]:
        found = []
        for value in values or ():
            key, sep, rest = value.partition("=")
            if not sep or not key or not rest:
                raise click.BadParameter(f"{value!r} is not {meta} (both sides of '=' are needed)", ctx, param)
            found.append((key, rest))
        return found

    return split


def _param_value(text: str) -> Any:
    """`--param` and `--metadata` values: JSON numbers, booleans, null, lists and objects;
    anything else a string."""

    def no_constants(name: str) -> Any:
        raise ValueError(name)  # NaN and Infinity are not JSON: keep them as text

    try:
        return json.loads(text, parse_constant=no_constants)
    except ValueError:
        return text


def _values(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Parsed `KEY=VALUE` pairs (from `_pairs`) as a dict; a key given twice keeps its last."""
    return {key: _param_value(value) for key, value in pairs}


def _metadata_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--metadata",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_pairs("KEY=VALUE"),
        help=help_text,
    )


# --- the command -----------------------------------------------------------------------------------


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="headwater", message="%(prog)s %(version)s")
@click.option(
    "--uri",
    metavar="URI",
    help="The backend: sqlite:///PATH, postgresql://... or http(s)://HOST:PORT "
    "(default: HEADWATER_URI, else sqlite:///HOME/headwater.db).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="The outbox, blobs and caches (default: HEADWATER_HOME, else ~/.headwater).",
)
@click.pass_context
def cli(ctx: click.Context, uri: str | None, home: str | None) -> None:
    """headwater: what every pipeline step read and wrote, as one lineage graph.

    Uses the backend that --uri names (default HEADWATER_URI, else
    sqlite:///$HEADWATER_HOME/headwater.db) and keeps its outbox, blobs and caches in --home
    (default HEADWATER_HOME, else ~/.headwater). A REF is NAME (its latest), NAME:vN,
    NAME:ALIAS or NAME@DIGEST.

    \b
    Exit codes:
      0  success
      1  any other error (HeadwaterError); `verify`, `status`: bytes missing, changed or drifted
      2  a usage error; an invalid REF (InvalidRef) or input (InvalidInput)
      3  not found (NotFound)
      4  contradicts what is recorded (Conflict)
      5  backend unavailable, or its schema is newer (Unavailable); local disk full or read-only (Unwritable)
      6  the backend refused the token (Unauthorized); the batch waits in the outbox
      7  the content was purged (Purged): `download`/`verify` of a version with purged files

    \b
    An error is one line on stderr, or with --json one JSON object:
      {"error": CLASS, "message": TEXT, "exit_code": N}
    Only `verify` and `sync` print on stdout when they fail: their report.
    """
    # Every command reads these through _client (or, for `server`, its environment).
    ctx.meta["headwater.uri"] = uri
    ctx.meta["headwater.home"] = home


# -- log --------------------------------------------------------------------------------------------


def _input_item(client: Client, text: str) -> Any:
    """An `--input`: a local path or a URI is hashed; anything else is a REF.

    A URI followed by a label, alias or digest of an artifact that exists
    (`file:///d/users.csv:v2`) is that version, not a location.
    """
    if is_uri(text):
        try:
            ref = client.parse(text)
            explicit = ref.label is not None or ref.digest is not None or ref.alias != LATEST
            if explicit and client.store.artifact_exists(ref.name):
                return client.get(text)
        except Unavailable:
            pass  # the backend is away: link() queues it, by REF when it names a version
        return text
    if os.path.lexists(text):
        try:
            ambiguous = client.store.artifact_exists(text)
        except Unavailable:
            ambiguous = False  # the backend is away: a path that exists here is that path
        if ambiguous:
            raise InvalidInput(
                f"--input {text!r} is both a local path and an artifact: "
                f"write ./{text} for the path or {text}:latest for the artifact"
            )
        return Path(text)
    return text


@cli.command("log")
@click.option("--job", help="The step's name (a new run; required unless --run names an existing one).")
@click.option(
    "--run",
    "run_id",
    metavar="RUN_ID",
    help="Add the inputs and outputs to this existing run (of any orchestrator) instead of a new one.",
)
@click.option("--namespace", "job_namespace", default="manual", show_default=True, help="The job's namespace.")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="REF_OR_PATH",
    help="What the step read: a REF, or a local path or URI (hashed, kept as a reference).",
)
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="NAME=PATH",
    callback=_pairs("NAME=PATH"),
    help="What the step wrote; a local path is stored.",
)
@click.option(
    "--reference",
    "references",
    multiple=True,
    metavar="NAME=URI",
    callback=_pairs("NAME=URI"),
    help="An output kept as a pointer only (not stored).",
)
@click.option(
    "--from",
    "made_from",
    multiple=True,
    metavar="NAME=REF_OR_PATH",
    callback=_pairs("NAME=REF_OR_PATH"),
    help="Output NAME was made from this input (repeatable; also an input of the run). "
    "Outputs without --from were made from every input.",
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="NAME=TYPE",
    callback=_pairs("NAME=TYPE"),
    help="The type of output NAME (dataset, model, ...).",
)
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    metavar="NAME=ALIAS",
    callback=_pairs("NAME=ALIAS"),
    help="Point ALIAS of output NAME at the new version.",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_pairs("KEY=VALUE"),
    help="A run parameter (JSON values are parsed).",
)
@_metadata_option("Metadata of every output of this call (JSON values are parsed; repeatable).")
@click.option("--description", metavar="TEXT", help="The description of every output of this call.")
@click.option("--tag", "tags", multiple=True, metavar="T", help="Tag every output of this call (repeatable).")
@click.option("--status", type=click.Choice(["succeeded", "failed"]), default="succeeded", show_default=True)
@json_option
@_with_client
def log_cmd(
    client: Client,
    job: str | None,
    run_id: str | None,
    job_namespace: str,
    inputs: Sequence[str],
    outputs: list[tuple[str, str]],
    references: list[tuple[str, str]],
    made_from: list[tuple[str, str]],
    types: list[tuple[str, str]],
    aliases: list[tuple[str, str]],
    params: list[tuple[str, str]],
    metadata: list[tuple[str, str]],
    description: str | None,
    tags: Sequence[str],
    status: str,
    as_json: bool,
) -> None:
    """Record a manual run: what a step done by hand read and wrote.

    --metadata, --description and --tag apply to every output (--output and --reference) of
    the call: log outputs that need different ones in separate calls. `--from NAME=REF` says
    which inputs made output NAME; `--run RUN_ID` adds to a run already recorded.
    """
    if (job is None) == (run_id is None):
        raise click.UsageError("give --job for a new run, or --run RUN_ID to add to an existing one")
    if run_id is not None and params:
        raise click.BadParameter("a run's parameters are its own: --run adds inputs and outputs", param_hint="--param")
    names = [n for n, _ in outputs] + [n for n, _ in references]
    for given, hint in ((metadata, "--metadata"), (description, "--description"), (tags, "--tag")):
        if given and not names:
            # Silently recording nothing of it would look like success.
            raise click.BadParameter("applies to outputs: give --output or --reference", param_hint=hint)
    type_of: dict[str, str] = {}
    for name, type_ in types:
        if name not in names:
            raise click.BadParameter(f"no --output or --reference named {name!r}", param_hint="--type")
        if type_of.setdefault(name, type_) != type_:
            raise click.BadParameter(f"two types for {name!r}", param_hint="--type")
    aliases_of: dict[str, list[str]] = {}
    for name, alias in aliases:
        if name not in names:
            raise click.BadParameter(f"no --output or --reference named {name!r}", param_hint="--alias")
        aliases_of.setdefault(name, []).append(alias)
    sources: dict[str, list[Any]] = {}
    for name, text in made_from:
        if name not in names:
            raise click.BadParameter(f"no --output or --reference named {name!r}", param_hint="--from")
        sources.setdefault(name, []).append(_input_item(client, text))
    items = [_input_item(client, text) for text in inputs]
    metadata_ = _values(metadata)

    def output(name: str, target: str, store: bool | None = None) -> Output:
        return Output(
            name,
            target,
            type=type_of.get(name),
            aliases=aliases_of.get(name, ()),
            metadata=metadata_,
            description=description,
            tags=tags,
            store=store,
            inputs=sources.get(name, ()),
        )

    outs = [output(name, path) for name, path in outputs] + [output(name, uri, store=False) for name, uri in references]
    if run_id is not None:
        run = client.link(inputs=items, outputs=outs, run_id=run_id)
    else:
        run = client.link(
            job,
            items,
            outs,
            job_namespace=job_namespace,
            params=_values(params),
            status=status,  # type: ignore[arg-type]  # click.Choice gave one of RunStatus's values
        )
    if as_json:
        _print_json(run)
    else:
        _show(render.logged_run(run))


# -- reads ------------------------------------------------------------------------------------------


@cli.command("ls")
@click.option("--type", "type_", metavar="T", help="Only artifacts of this type.")
@click.option("--name", metavar="TEXT", help="Only artifacts whose name holds TEXT (in any case).")
@click.option("--tag", metavar="T", help="Only artifacts with a version tagged T.")
@_metadata_option(
    "Only artifacts with a version whose metadata has KEY equal to VALUE (JSON values are "
    "parsed; repeatable: all of them, on one version)."
)
@click.option(
    "--sort",
    type=click.Choice(["name", "updated"]),
    default="name",
    show_default=True,
    help="By name, or newest version first.",
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N")
@json_option
@_with_client
def ls_cmd(
    client: Client,
    type_: str | None,
    name: str | None,
    tag: str | None,
    metadata: list[tuple[str, str]],
    sort: ArtifactOrder,
    limit: int | None,
    as_json: bool,
) -> None:
    """List artifacts with their latest version."""
    if not metadata:
        found = client.artifacts(type=type_, limit=limit, name_like=name, tag=tag, order=sort)
    else:
        # The store has no metadata filter for artifacts: ask each one for a matching version,
        # in the listing's order, until there are enough.
        wanted = _values(metadata)
        listed = client.artifacts(type=type_, name_like=name, tag=tag, order=sort)
        matching = (a for a in listed if client.versions(a.name, metadata=wanted, limit=1))
        found = list(itertools.islice(matching, limit))
    if as_json:
        _print_json(found)
    elif not found:
        _note("no artifacts")
    else:
        _show(render.artifacts_table(found))


@cli.command("versions")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), metavar="N")
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="T",
    help="Only versions with this tag (repeatable: all of them).",
)
@_metadata_option(
    "Only versions whose metadata has KEY equal to VALUE (JSON values are parsed; repeatable: all of them)."
)
@click.option("--deleted", is_flag=True, help="Include deleted versions.")
@json_option
@_with_client
def versions_cmd(
    client: Client,
    name: str,
    limit: int | None,
    tags: Sequence[str],
    metadata: list[tuple[str, str]],
    deleted: bool,
    as_json: bool,
) -> None:
    """List the versions of artifact NAME, oldest first."""
    found = client.versions(name, limit=limit, tags=tags, metadata=_values(metadata), include_deleted=deleted)
    if as_json:
        _print_json(found)
    elif not found:
        _note(f"{name!r} has no versions matching")
    else:
        _show(render.versions_table(found))


@cli.command("aliases")
@click.argument("name")
@click.option("--history", is_flag=True, help="Every move of every alias, oldest first.")
@json_option
@_with_client
def aliases_cmd(client: Client, name: str, history: bool, as_json: bool) -> None:
    """List the aliases of artifact NAME and the version each points to now.

    With --history, every move instead: when, which alias, and the version it moved to (or
    "removed"). With --json, the moves: for the aliases now, the move that set each.
    """
    moves = client.alias_history(name)
    if not history:
        last: dict[str, AliasMove] = {}
        for move in moves:  # oldest first: the last move of an alias is where it is now
            last[move.alias] = move
        moves = [last[alias] for alias in sorted(last) if last[alias].version is not None]
    if as_json:
        _print_json(moves)
    elif not moves:
        _note(f"{name!r} has no aliases")
    else:
        _show(render.alias_moves_table(moves, history=history))


def _check_option(func: F) -> F:
    return click.option(
        "--check",
        is_flag=True,
        help="Ask the storage whether each referenced file still holds what was logged; mark what drifted.",
    )(func)


def _drift(client: Client, refs: Iterable[str]) -> list[Drift]:
    found: list[Drift] = []
    for ref in dict.fromkeys(refs):
        found.extend(client.check(ref))
    return found


def _with_drift(obj: Any, drift: list[Drift] | None) -> Any:
    """The JSON of `obj`, with a `drift` list added when --check asked for one."""
    if drift is None:
        return obj
    return {**json.loads(render.to_json(obj)), "drift": [d.model_dump(mode="json") for d in drift]}


@cli.command("show")
@click.argument("ref")
@click.option("--at", type=IsoTime(), help="What REF pointed to at this time (ISO 8601; no offset = UTC).")
@_check_option
@json_option
@_with_client
def show_cmd(client: Client, ref: str, at: datetime | None, check: bool, as_json: bool) -> None:
    """Show one version and its entries.

    Fields, aliases, tags, metadata and the runs that produced it; with --at, the version REF
    named at that time (what `production` pointed to on 1 March); with --check, whether each
    referenced entry still holds what was logged.
    """
    version = client.get(ref, at=at)
    drift = client.check(version) if check else None
    if as_json:
        _print_json(_with_drift(version, drift))
        return
    producers = client.runs_by_id(r for r in [version.produced_by, *version.producers] if r)
    _show(render.version_detail(version, producers, at=at, drift=drift))


@cli.command("download")
@click.argument("ref")
@click.argument("dest", required=False, type=click.Path(file_okay=False))
@click.option("--entry", metavar="PATH", help="Only this entry (its PATH as `show` lists it).")
@json_option
@_with_client
def download_cmd(client: Client, ref: str, dest: str | None, entry: str | None, as_json: bool) -> None:
    """Restore a version's bytes, every one verified, and print where they are.

    The entries are written under the folder DEST (default: a cache under --home, else
    HEADWATER_HOME) at their paths. Prints the file for a single-file version or --entry, else the folder.
    """
    version = client.get(ref)
    path = client.download(version, dest=dest, entry=entry)
    if as_json:
        _print_json({"ref": version.ref, "path": str(path)})
    else:
        _show(Text(str(path)))


@cli.command("runs")
@click.option("--job", metavar="J")
@click.option("--orchestrator", metavar="O", help="manual, airflow, prefect, dagster, openlineage, ...")
@click.option("--status", type=click.Choice(_RUN_STATUSES))
@click.option("--limit", type=click.IntRange(min=1), metavar="N")
@json_option
@_with_client
def runs_cmd(
    client: Client,
    job: str | None,
    orchestrator: str | None,
    status: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    found = client.runs(job=job, orchestrator=orchestrator, status=status, limit=limit)
    if as_json:
        _print_json(found)
    elif not found:
        _note("no runs")
    else:
        _show(render.runs_table(found))


_RUN_ID_PART = re.compile(r"[0-9a-fA-F-]{6,}")


def _find_run(client: Client, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except NotFound:
        if not _RUN_ID_PART.fullmatch(run_id) or len(run_id) >= 36:
            raise
    # The short id shown in tables and trees is the id's last group; a leading part works too.
    needle = run_id.lower()
    matches = [r for r in client.runs() if r.id.endswith(needle) or r.id.startswith(needle)]
    if not matches:
        raise NotFound(f"no run with id {run_id!r} (nor one whose id starts or ends with it)")
    if len(matches) > 1:
        raise InvalidInput(f"run id {run_id!r} is ambiguous ({len(matches)} runs match): give more characters")
    return matches[0]


@cli.command("run")
@click.argument("run_id")
@json_option
@_with_client
def run_cmd(client: Client, run_id: str, as_json: bool) -> None:
    """Show one run.

    RUN_ID is the full id, or the short id shown by `runs` and lineage trees.
    """
    run = _find_run(client, run_id)
    if as_json:
        _print_json(run)
    else:
        _show(render.run_detail(run))


# -- changes ----------------------------------------------------------------------------------------


@cli.command("alias")
@click.argument("ref")
@click.argument("alias")
@click.option("--remove", is_flag=True, help="Remove ALIAS from artifact REF (then a NAME).")
@json_option
@_with_client
def alias_cmd(client: Client, ref: str, alias: str, remove: bool, as_json: bool) -> None:
    """Point an alias at a version, or remove it.

    ALIAS (production, candidate, ...) moves to the version REF; with --remove the arguments
    are NAME ALIAS and the alias is removed from artifact NAME.
    """
    if remove:
        client.unalias(ref, alias)
        if as_json:
            _print_json({"name": ref, "alias": alias, "removed": True})
        else:
            _show(Text(f"removed alias {alias} of {ref}"))
        return
    version = client.alias(ref, alias)
    if as_json:
        _print_json(version)
    else:
        _show(Text(f"{alias} -> {version.ref}"))


@cli.command("tag")
@click.argument("ref")
@click.argument("tags", nargs=-1, required=True)
@click.option("--remove", is_flag=True, help="Remove the tags instead of adding them.")
@json_option
@_with_client
def tag_cmd(client: Client, ref: str, tags: Sequence[str], remove: bool, as_json: bool) -> None:
    """Add or remove tags on a version.

    Tags are free-form labels (pii, validated, ...); a version can have many.
    """
    version = client.untag(ref, *tags) if remove else client.tag(ref, *tags)
    if as_json:
        _print_json(version)
    else:
        _show(Text(f"{version.ref} tags: {', '.join(version.tags) or '-'}"))


@cli.command("delete")
@click.argument("ref")
@click.option("--reason", metavar="TEXT", default=None, help="Why (kept in the audit log).")
@json_option
@_with_client
def delete_cmd(client: Client, ref: str, reason: str | None, as_json: bool) -> None:
    """Delete a version; its lineage is kept.

    The version REF stays in the lineage as a tombstone, its aliases go, and `headwater gc`
    can then free its stored bytes.
    """
    version = client.delete(ref, reason=reason)
    if as_json:
        _print_json(version)
    else:
        _show(Text(f"deleted {version.ref} (lineage kept; `headwater gc` frees its stored bytes)"))


@cli.command("gc")
@click.option("--dry-run", is_flag=True, help="Only list the blobs that would be removed.")
@click.option(
    "--grace",
    type=Duration(),
    default=None,
    help="Keep blobs stored less than this long ago, e.g. 30m, 24h, 7d (default: HEADWATER_GC_GRACE, 24h).",
)
@click.option(
    "--apply-retention", is_flag=True, help="First delete the versions the retention policies select (see `retention`)."
)
@json_option
@_with_client
def gc_cmd(client: Client, dry_run: bool, grace: float | None, apply_retention: bool, as_json: bool) -> None:
    """Remove stored blobs that no live version references.

    Blobs whose versions wait in an outbox of this HEADWATER_HOME are kept, and so are blobs
    stored within the grace period (versions may wait in other machines' outboxes); purged
    content goes at once. With --apply-retention, the versions the retention policies select
    are deleted first (lineage kept, each one in the audit log), so their bytes can go.
    """
    removals = client.apply_retention(dry_run=dry_run) if apply_retention else []
    doomed = sorted(client.gc(dry_run=dry_run, grace=grace))
    if as_json:
        found: dict[str, Any] = {"dry_run": dry_run, "blobs": doomed, "count": len(doomed)}
        if apply_retention:
            found["retention"] = [r.model_dump() for r in removals]
        _print_json(found)
        return
    verb = "would remove" if dry_run else "removed"
    lines = [f"{'would delete' if dry_run else 'deleted'} {r.ref} ({r.policy})" for r in removals]
    if apply_retention and not removals:
        lines.append("no version is beyond its retention policy")
    lines += [f"{verb} {len(doomed)} unreferenced blob(s)"]
    if dry_run:
        lines += [f"  {d}" for d in doomed]
    _show(Text("\n".join(lines)))


# -- purges and the audit log -----------------------------------------------------------------------


@cli.command("purge")
@click.argument("ref", required=False)
@click.option("--path", "path", metavar="P", help="A file (its name in a manifest, a local path or a URI).")
@click.option("--digest", metavar="D", help="A file digest (blake3:<hex> or the hex alone).")
@click.option("--reason", required=True, metavar="TEXT", help="Why (kept in the audit log).")
@click.option("--redact-path", is_flag=True, help="Replace the purged entries' paths by a redacted form.")
@click.option("--dry-run", is_flag=True, help="Only show what would be removed, and the downstream impact.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (needed when not on a terminal).")
@json_option
@_with_client
def purge_cmd(
    client: Client,
    ref: str | None,
    path: str | None,
    digest: str | None,
    reason: str,
    redact_path: bool,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Remove content everywhere headwater keeps it; keep the lineage (a privacy takedown).

    Selects as `headwater impact` does: `--path P` (in every version holding it), `--digest D`,
    or the files of version REF (`REF --path P`: only its file P), found wherever they are by
    digest. Removes the bytes from the blob store, the tracking server, the download cache and
    the stat cache; marks the entries purged (digest and size kept); records who, when and why
    in the audit log (`headwater audit`). Referenced objects (s3://, https://) are listed, not
    deleted. Exit code 7 afterwards from `download`/`verify` of an affected version.
    """
    plan = client.purge(reason=reason, path=path, digest=digest, ref=ref, dry_run=True)
    if dry_run:
        if as_json:
            _print_json(plan)
        else:
            _show(render.purge_view(plan, done=False))
        return
    if not yes:
        if not sys.stdin.isatty():
            raise InvalidInput("purge removes bytes for good: pass --yes to confirm when not on a terminal")
        _show(render.purge_view(plan, done=False))
        if not click.confirm(f"Purge {plan.files} file(s) in {len(plan.holding)} version(s)?", default=False):
            raise click.Abort()
    report = client.purge(reason=reason, path=path, digest=digest, ref=ref, redact_path=redact_path)
    if as_json:
        _print_json(report)
    else:
        _show(render.purge_view(report, done=True))


@cli.group("retention")
def retention_group() -> None:
    """Retention policies: which old versions `headwater gc --apply-retention` deletes.

    A policy for an artifact (--name) or a type (--type) keeps the newest --keep-last versions
    and those younger than --older-than (with both, a version goes when it is beyond both). A
    version holding an alias is never deleted, nor (unless --no-protect-lineage) one that a
    version holding an alias other than `latest` was built from.
    """


@retention_group.command("set")
@click.option("--name", metavar="NAME", help="An artifact.")
@click.option("--type", "type_", metavar="TYPE", help="Every artifact of this type.")
@click.option("--keep-last", type=click.IntRange(min=0), default=None, help="Keep the newest N versions.")
@click.option("--older-than", type=Duration(), default=None, help="Delete only versions older than this (90d).")
@click.option(
    "--protect-lineage/--no-protect-lineage",
    default=True,
    help="Keep versions an aliased version was built from (default: on).",
)
@json_option
@_with_client
def retention_set_cmd(
    client: Client,
    name: str | None,
    type_: str | None,
    keep_last: int | None,
    older_than: float | None,
    protect_lineage: bool,
    as_json: bool,
) -> None:
    """Set the retention policy of an artifact or a type."""
    client.set_retention(
        name=name, type=type_, keep_last=keep_last, older_than_s=older_than, protect_lineage=protect_lineage
    )
    _retention_show(client, as_json)


@retention_group.command("unset")
@click.option("--name", metavar="NAME", help="An artifact.")
@click.option("--type", "type_", metavar="TYPE", help="A type.")
@json_option
@_with_client
def retention_unset_cmd(client: Client, name: str | None, type_: str | None, as_json: bool) -> None:
    """Remove the retention policy of an artifact or a type."""
    client.set_retention(name=name, type=type_, remove=True)
    _retention_show(client, as_json)


@retention_group.command("show")
@json_option
@_with_client
def retention_show_cmd(client: Client, as_json: bool) -> None:
    """The retention policies, and what `gc --apply-retention` would delete now."""
    _retention_show(client, as_json, with_plan=True)


def _retention_show(client: Client, as_json: bool, *, with_plan: bool = False) -> None:
    from headwater.retention import describe, plan

    policies = client.retention()
    removals = plan(client) if with_plan else []
    if as_json:
        found: dict[str, Any] = {"policies": policies}
        if with_plan:
            found["would_delete"] = [r.model_dump() for r in removals]
        _print_json(found)
        return
    lines = [f"{describe(p)} (set {render.fmt_time(p.set_at)} by {p.who})" for p in policies]
    lines = lines or ["no retention policy"]
    if with_plan:
        lines += [f"would delete {r.ref} ({r.policy})" for r in removals] or ["nothing to delete now"]
    _show(Text("\n".join(lines)))


@cli.command("audit")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many records.")
@click.option("--action", type=click.Choice(["purge", "delete", "retention"]), default=None, help="Only these.")
@json_option
@_with_client
def audit_cmd(client: Client, limit: int | None, action: str | None, as_json: bool) -> None:
    """The append-only audit log: purges, deletes and retention removals, newest first.

    Each record says who (the OS user; on a tracking server with tokens, also the token's
    fingerprint), when, what and why.
    """
    records = client.audit(limit=limit, action=action)
    if as_json:
        _print_json(records)
    else:
        _show(render.audit_table(records))


# -- lineage ----------------------------------------------------------------------------------------


def _depth_option(func: F) -> F:
    return click.option(
        "--depth",
        type=click.IntRange(min=0),
        metavar="N",
        help="At most N runs away (default: all).",
    )(func)


def _refs_option(func: F) -> F:
    return click.option(
        "--refs",
        is_flag=True,
        help="Print only the versions' refs, one a line, nearest first (with --json: refs with their"
        " hops, and the runs' ids): what a closure of any size answers quickly.",
    )(func)


def _lineage(
    client: Client,
    ref: str,
    direction: Literal["upstream", "downstream"],
    depth: int | None,
    check: bool,
    as_json: bool,
    refs: bool = False,
) -> None:
    if refs:
        if check:
            raise click.UsageError("--check reads each version's files: it needs the tree, not --refs")
        reached = client.reachable(ref, direction, depth=depth)
        if as_json:
            _print_json(reached)
        else:
            click.echo("\n".join(reached.versions))
        return
    graph = client.upstream(ref, depth=depth) if direction == "upstream" else client.downstream(ref, depth=depth)
    drift = _drift(client, (v.ref for v in graph.versions)) if check else None
    if as_json:
        _print_json(_with_drift(graph, drift))
    elif drift is None:
        _show(render.lineage_tree(graph, depth=depth, direction=direction))
    else:
        marked = {d.version for d in drift}
        tree = render.lineage_tree(graph, depth=depth, direction=direction, drifted=marked)
        _show(tree, Text(""), render.drift_view(drift, len(graph.versions)))


@cli.command("upstream")
@click.argument("ref")
@_depth_option
@_check_option
@_refs_option
@json_option
@_with_client
def upstream_cmd(client: Client, ref: str, depth: int | None, check: bool, refs: bool, as_json: bool) -> None:
    """What a version was made from, as a tree.

    version -> run that produced it -> versions that run used -> ...
    """
    _lineage(client, ref, "upstream", depth, check, as_json, refs)


@cli.command("downstream")
@click.argument("ref")
@_depth_option
@_check_option
@_refs_option
@json_option
@_with_client
def downstream_cmd(client: Client, ref: str, depth: int | None, check: bool, refs: bool, as_json: bool) -> None:
    """What was made from a version, as a tree.

    version -> runs that used it -> versions they produced -> ...
    """
    _lineage(client, ref, "downstream", depth, check, as_json, refs)


@cli.command("graph")
@click.argument("ref")
@click.option(
    "--direction",
    type=click.Choice(["upstream", "downstream"]),
    default="upstream",
    show_default=True,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot", "json"]),
    default="text",
    show_default=True,
)
@_depth_option
@json_option
@_with_client
def graph_cmd(client: Client, ref: str, direction: str, fmt: str, depth: int | None, as_json: bool) -> None:
    """Lineage as a tree, Mermaid, Graphviz DOT or JSON."""
    if as_json:
        fmt = "json"
    graph = client.upstream(ref, depth=depth) if direction == "upstream" else client.downstream(ref, depth=depth)
    if fmt == "json":
        _print_json(graph)
    elif fmt == "mermaid":
        click.echo(render.mermaid(graph), nl=False)
    elif fmt == "dot":
        click.echo(render.dot(graph), nl=False)
    else:
        _show(render.lineage_tree(graph, depth=depth, direction=direction))


@cli.command("diff")
@click.argument("left", metavar="REF")
@click.argument("right", metavar="REF")
@json_option
@_with_client
def diff_cmd(client: Client, left: str, right: str, as_json: bool) -> None:
    """Compare the entries of two versions.

    Lists the paths added (+), removed (-) and changed (~) from the first REF to the second.
    """
    result = client.diff(left, right)
    if as_json:
        _print_json(result)
    else:
        _show(render.diff_view(result))


@cli.command("impact")
@click.argument("ref", required=False)
@click.option("--path", "path", metavar="P", help="A file (local path, its name in a manifest, or a URI).")
@click.option("--digest", metavar="D", help="A file digest (blake3:<hex> or the hex alone).")
@_check_option
@json_option
@_with_client
def impact_cmd(
    client: Client, ref: str | None, path: str | None, digest: str | None, check: bool, as_json: bool
) -> None:
    """Which versions hold a file, and what to retrain.

    Lists the versions holding the file (by path or digest), or the files of version REF as
    they were (by digest; `REF --path P`: only its file P), then every version and run
    downstream of them: the models to retrain, other versions to rebuild, runs to re-run.
    """
    result = client.impact(digest=digest, path=path, ref=ref)
    shown = [*result.holding, *result.downstream.versions]
    drift = _drift(client, (v.ref for v in shown)) if check else None
    if as_json:
        _print_json(_with_drift(result, drift))
        return
    if ref is not None:
        what = f"the files of {ref}" if path is None else f"{path!r} as it was in {ref}"
    else:
        what = f"path {path!r}" if path is not None else f"digest {digest}"
    graph = result.downstream
    using = {e.run_id for e in graph.edges if e.direction == "used"}
    runs = [r for r in graph.runs if r.id in using]
    if drift is None:
        _show(render.impact_view(result, what, runs))
    else:
        checked = len({v.ref for v in shown})
        marked = {d.version for d in drift}
        _show(render.impact_view(result, what, runs, drifted=marked), Text(""), render.drift_view(drift, checked))


@cli.command("verify")
@click.argument("ref")
@json_option
@_with_client
def verify_cmd(client: Client, ref: str, as_json: bool) -> None:
    """Check a version's bytes; exit 1 if any changed.

    Re-hashes every entry of REF: stored blobs, referenced files and remote checksums.
    """
    report = client.verify(ref)
    if as_json:
        _print_json(report)
    else:
        _show(render.verify_view(report))
    if not report.ok:
        click.get_current_context().exit(1)


@cli.command("status")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@json_option
@_with_client
def status_cmd(client: Client, refs: Sequence[str], as_json: bool) -> None:
    """What changed under the versions in use; exit 1 if anything did.

    Like `dvc status`: for each REF, else every artifact's latest and every aliased version,
    lists the referenced files whose storage checksum moved (drifted), whose bytes changed since
    they were logged (changed), that are gone (missing) or whose storage could not be asked
    (unreachable). Stored entries are headwater's own bytes: `verify` checks those.
    """
    targets = [client.get(ref).ref for ref in refs] or client.versions_in_use()
    drift = client.status(targets) if targets else []
    if as_json:
        _print_json(drift)
    else:
        _show(render.drift_view(drift, len(set(targets))))
    if drift:
        click.get_current_context().exit(1)


# -- operations -------------------------------------------------------------------------------------


@cli.command("sync")
@json_option
@_with_client
def sync_cmd(client: Client, as_json: bool) -> None:
    """Deliver everything waiting in the outbox to the backend."""
    result = client.sync()
    pending = len(client.outbox.pending())
    dead = len(client.outbox.dead())
    if as_json:
        _print_json(
            {
                "delivered": result.delivered,
                "pending": pending,
                "dead": dead,
                "refused": {name: str(err) for name, err in sorted(result.dead.items())},
                "error": result.error,
            }
        )
    else:
        # Each batch refused now has had its one line already: the outbox logs it as it buries it.
        _show(Text(f"delivered {result.delivered}, pending {pending}, dead {dead}"))
    if pending:
        # The class of what stopped delivery (Unauthorized: fix the token) sets the exit code.
        stopped = type(result.stopped_by) if isinstance(result.stopped_by, Unavailable) else Unavailable
        raise stopped(f"{pending} batch(es) still wait in the outbox: {result.error or 'backend busy'}")


@cli.group("db", cls=_Group)
def db_group() -> None:
    """The tracking database."""


@db_group.command("upgrade")
@json_option
@_with_client
def db_upgrade_cmd(client: Client, as_json: bool) -> None:
    """Migrate the database (--uri, else HEADWATER_URI) to this headwater's schema."""
    from headwater.store.migrate import head_revision

    store = client.store  # opening a SQL store migrates it (under a lock)
    where = _where(client.uri)
    revision = head_revision()
    if as_json:
        _print_json({"uri": where, "revision": revision, "backend": type(store).__name__})
    else:
        _show(Text(f"{where}: schema at revision {revision}"))


@cli.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Worker processes (default: min(4, CPUs)).")
@click.option(
    "--store",
    "store_uri",
    metavar="URI",
    help="sqlite:///PATH or postgresql://... (default: the global --uri, else HEADWATER_URI, else the SQLite default).",
)
@click.option(
    "--blobs",
    "blob_uri",
    metavar="URL",
    help="Where uploaded blobs live: a folder or an fsspec URL (default: HEADWATER_BLOB_URI, else "
    "$HEADWATER_HOME/blobs).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="Tokens, one a line: TOKEN or read-write TOKEN, read-only TOKEN (also HEADWATER_TOKEN, HEADWATER_READ_TOKEN).",
)
@click.option(
    "--max-body-mb", type=click.FloatRange(min=0.001), default=None, help="Largest JSON request (default 64)."
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@click.option("--no-access-log", is_flag=True, help="Do not log every request.")
@json_option
@click.pass_context
def server_cmd(
    ctx: click.Context,
    host: str,
    port: int,
    workers: int | None,
    store_uri: str | None,
    blob_uri: str | None,
    token_file: str | None,
    max_body_mb: float | None,
    log_level: str,
    no_access_log: bool,
    as_json: bool,
) -> None:
    """Run the tracking server: the REST API, blobs, and OpenLineage in (POST /api/v1/lineage)."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise InvalidInput('the tracking server needs the "server" extra: pip install "headwater[server]"') from None
    # Workers are separate processes that build the app from the environment: set it only
    # while the server runs (the CLI may run inside another program's process), and before
    # the settings are read, since their defaults come from HEADWATER_HOME.
    overrides = {"HEADWATER_SERVER_BIND": f"{host}:{port}"}
    for name, value in (
        ("HEADWATER_SERVER_STORE", store_uri or ctx.meta.get("headwater.uri")),
        ("HEADWATER_SERVER_BLOBS", blob_uri),
        ("HEADWATER_HOME", ctx.meta.get("headwater.home")),
        ("HEADWATER_TOKEN_FILE", token_file),
        ("HEADWATER_SERVER_MAX_BODY_MB", None if max_body_mb is None else repr(max_body_mb)),
    ):
        if value is not None:
            overrides[name] = value
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        _serve(host, port, workers, log_level, not no_access_log, as_json)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _serve(host: str, port: int, workers: int | None, log_level: str, access_log: bool, as_json: bool) -> None:
    """`headwater server` once its environment is set."""
    from headwater.server.settings import Settings
    from headwater.store.sql import SQLStore

    settings = Settings.from_env()
    if settings.openlineage_url:
        from headwater.openlineage import refuse_loop

        refuse_loop(settings.openlineage_url, settings.bind)
    SQLStore(settings.store_uri).close()  # migrate once, and fail here with one line if it cannot
    if workers is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        workers = max(1, min(4, cpus))
    where = _where(settings.store_uri)
    auth = (
        "off (no token set)"
        if not settings.tokens
        else (
            f"{sum(1 for s in settings.tokens.values() if s == 'write')} read-write, "
            f"{sum(1 for s in settings.tokens.values() if s == 'read')} read-only token(s)"
        )
    )
    url = f"http://{host}:{port}"
    if as_json:
        click.echo(
            json.dumps(
                {
                    "url": url,
                    "store": where,
                    "blobs": settings.blob_uri,
                    "workers": workers,
                    "auth": bool(settings.tokens),
                }
            )
        )
    _note(f"serving {where} at {url} ({workers} worker(s), auth {auth})")
    # The CLI collects library warnings to print after a command; a server prints them live.
    logger = logging.getLogger("headwater")
    for handler in list(logger.handlers):
        if isinstance(handler, _Warnings):
            logger.removeHandler(handler)
    from headwater.server.run import serve

    serve(host, port, workers, log_level, access_log=access_log)


@cli.command("config")
@click.option(
    "--markdown", is_flag=True, help="The registry as docs/configuration.md's table (name, type, default, meaning)."
)
@json_option
@click.pass_context
def config_cmd(ctx: click.Context, markdown: bool, as_json: bool) -> None:
    """List every setting: its effective value and where it came from.

    Every HEADWATER_* variable headwater reads, from one registry. Secrets (tokens, API keys)
    are shown as **** when set. --uri and --home override HEADWATER_URI and HEADWATER_HOME for
    this call, as for every command.
    """
    from headwater import config

    if markdown:
        click.echo(config.markdown_table(), nl=False)
        return
    env = dict(os.environ)
    overridden = {}
    root = ctx.find_root()
    for option, name in (("headwater.uri", "HEADWATER_URI"), ("headwater.home", "HEADWATER_HOME")):
        if root.meta.get(option):
            env[name] = str(root.meta[option])
            overridden[name] = "--" + name.split("_", 1)[1].lower()
    rows = [
        (setting, value, f"{overridden[setting.name]} option" if setting.name in overridden else source)
        for setting, value, source in config.effective(env)
    ]
    if as_json:
        _print_json(
            [
                {
                    "name": s.name,
                    "value": value,
                    "source": source,
                    "type": s.kind,
                    "default": s.default,
                    "scope": s.scope,
                    "secret": s.secret,
                    "doc": s.doc,
                }
                for s, value, source in rows
            ]
        )
        return
    _show(render.settings_table((s.name, value, source) for s, value, source in rows))


@cli.command("ui")
@click.option("--port", type=click.IntRange(0, 65535), default=8766, show_default=True, help="Port on 127.0.0.1.")
@click.option("--no-browser", is_flag=True, help="Only print the address; do not open a browser.")
@json_option
@_with_client
def ui_cmd(client: Client, port: int, no_browser: bool, as_json: bool) -> None:
    """Browse the lineage graph of the configured store in a web browser.

    Serves the read-only web UI on 127.0.0.1 for --uri, else HEADWATER_URI (the SQLite store
    under --home or HEADWATER_HOME by default, PostgreSQL, or a tracking server with
    HEADWATER_TOKEN), the same pages `headwater server` serves at /. Stop it with Ctrl-C.
    """
    try:
        import jinja2  # noqa: F401
        import uvicorn
    except ImportError:
        raise InvalidInput('the web UI needs the "server" extra: pip install "headwater[server]"') from None
    from headwater.server.run import log_config
    from headwater.server.ui import create_ui_app

    client.store  # noqa: B018 - open (and migrate) it now: a wrong URI fails here, with one line
    config_ = uvicorn.Config(
        create_ui_app(client),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=log_config(),
        server_header=False,
        access_log=False,
    )
    server = uvicorn.Server(config_)
    sock = config_.bind_socket()  # bound before the browser asks (and port 0 picks a free one)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    if as_json:
        click.echo(json.dumps({"url": url, "store": _where(client.uri)}), nl=True)
    _note(f"headwater UI for {_where(client.uri)} at {url} (Ctrl-C to stop)")
    if not no_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    server.run(sockets=[sock])  # the client is closed with the command's context


def _where(uri: str) -> str:
    """A store URI fit to print: no password (of a database or a tracking server alike)."""
    from headwater import config

    return config.mask_uri(uri)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `headwater` script."""
    args = list(argv) if argv is not None else sys.argv[1:]
    try:
        cli.main(args=args, prog_name="headwater")
    except HeadwaterError as err:  # raised outside a command (e.g. while closing the client)
        text = _error_text(type(err).__name__, str(err), err.exit_code, _wants_json(args))
        click.echo(text, err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
