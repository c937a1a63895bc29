"""Every page of the documentation site runs as written, and documents every CLI command.

The rule of the README (tests/test_readme.py), for each docs/*.md page:

- A ```bash or ```python block runs, unless the line right before it is
  `<!-- not run: REASON -->` with a real reason (three words or more: what it needs, and which
  test covers it instead).
- Any other fence is not code: only a block without a language (program output) or one of
  NOT_CODE (configuration or output: ```text, ```yaml, ```toml, ```ini, ```json) is allowed. A
  shell transcript (```console) is not: its commands go in a ```bash block, its output in a
  plain one.
- The runnable blocks of a page run top to bottom, in one shell, in an empty folder, with
  HEADWATER_HOME set to a folder there and this environment's bin first on PATH; the run exits 0.
  A page that needs files makes them in its own first block.

And the CLI: every `headwater` command has a help text (what docs/cli.md's mkdocs-click reference
renders) and is named as `headwater <command>` on a narrative page (every docs/*.md but the
generated cli.md); every option has a help text, or its flag is named in its command's help or on
a narrative page that names `headwater <command>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from headwater.cli import cli
from tests.markdown_blocks import RUNNABLE, blocks, run_script, script

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
NOT_CODE = frozenset({"", "text", "yaml", "toml", "ini", "json"})  # output and configuration only
GENERATED = {"cli.md"}  # the mkdocs-click reference: every command is there by construction


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_block_runs_or_says_why_not(page: Path) -> None:
    text = page.read_text()
    found = blocks(text)
    fences = [line for line in text.splitlines() if line.lstrip().startswith("```")]
    assert len(fences) == 2 * len(found), f"{page.name}: a fence the block pattern does not read (```lang only)"
    assert text.count("<!-- not run:") == sum(why is not None for _, _, why in found), (
        f"{page.name}: a `not run` note that is not on the line right before a block"
    )
    for lang, code, why in found:
        where = f"{page.name}, ```{lang} block {code[:60]!r}"
        if why is not None:
            assert lang in RUNNABLE, f"{where}: only bash and python blocks are marked `not run`"
            assert len(why.split()) >= 3, f"{where}: say why it is not run, and what tests it instead"
        else:
            assert lang in RUNNABLE or lang in NOT_CODE, (
                f"{where}: run it (```bash, ```python), mark it `not run`, or it must be output or configuration"
            )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_page_runs_top_to_bottom_in_an_empty_folder(page: Path, tmp_path: Path) -> None:
    code = script(page.read_text(), not_code=NOT_CODE)
    folder = tmp_path / page.stem
    folder.mkdir()
    done = run_script(code, folder, {"HEADWATER_HOME": str(folder / ".headwater")})
    assert done.returncode == 0, f"{page.name} exits {done.returncode}:\n" + done.stdout[-3000:] + done.stderr[-3000:]


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    """Every subcommand of `group`, as ("db upgrade", command), groups included."""
    for name, command in sorted(group.commands.items()):
        full = (*path, name)
        yield " ".join(full), command
        if isinstance(command, click.Group):
            yield from commands(command, full)


def narrative() -> dict[str, str]:
    return {p.name: p.read_text() for p in PAGES if p.name not in GENERATED}


def test_every_command_and_option_is_documented() -> None:
    pages = narrative()
    missing: list[str] = []
    for name, command in commands(cli):
        if not (command.help or command.short_help or "").strip():
            missing.append(f"`headwater {name}` has no help text")
        named = re.compile(rf"headwater {re.escape(name)}(?![\w-])")
        naming = [text for text in pages.values() if named.search(text)]
        if not naming:
            missing.append(f"`headwater {name}` is on no narrative page (docs/manual.md, ...)")
        for param in command.params:
            if not isinstance(param, click.Option) or param.hidden or (param.help or "").strip():
                continue
            flags = [*param.opts, *param.secondary_opts]
            flag = re.compile(rf"(?<![\w-])(?:{'|'.join(map(re.escape, flags))})(?![\w-])")
            if flag.search(command.help or "") or any(flag.search(text) for text in naming):
                continue
            missing.append(f"`headwater {name} {flags[0]}` has no help text and no narrative page names it")
    assert not missing, "\n".join(missing)
