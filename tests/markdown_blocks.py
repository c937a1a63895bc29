"""The code blocks of a Markdown page, and one bash script that runs them in order.

A fenced ```bash or ```python block runs unless the line right before it is
`<!-- not run: REASON -->`. Bash runs as it is and Python through `python -`, all in one shell
(`set -euo pipefail`), so an `export` holds for the blocks that follow. Used by
tests/test_readme.py (README.md) and tests/test_docs.py (docs/*.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Collection, Mapping
from pathlib import Path

BLOCK = re.compile(r"(?P<note><!-- not run: (?P<why>[^>]+?) -->\n)?```(?P<lang>[a-z]*)\n(?P<code>.*?)```", re.S)
RUNNABLE = ("bash", "python")


def blocks(markdown: str) -> list[tuple[str, str, str | None]]:
    """(language, code, why it is not run or None) of every fenced block, in order."""
    return [(m["lang"], m["code"], m["why"]) for m in BLOCK.finditer(markdown)]


def script(markdown: str, not_code: Collection[str] = ()) -> str:
    """The runnable blocks as one bash script. A block that is neither marked `not run` nor in a
    language of `not_code` (output, configuration) must be ```bash or ```python."""
    lines = ["set -euo pipefail"]
    for lang, code, why in blocks(markdown):
        if why is not None or lang in not_code:
            continue
        assert lang in RUNNABLE, f"a ```{lang} block is neither run nor marked `not run`:\n{code}"
        if lang == "bash":
            lines.append(code)
        else:
            lines.append(f"python - <<'HEADWATER_DOC_PY'\n{code}HEADWATER_DOC_PY")
    return "\n".join(lines) + "\n"


def run_script(
    text: str, folder: Path, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `text` with bash in `folder`, without the caller's HEADWATER_* settings, with this
    environment's python and headwater first on PATH; `env` adds (or overrides) variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    clean["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    clean.update(env or {})
    return subprocess.run(
        ["bash", "-c", text], cwd=folder, env=clean, capture_output=True, text=True, timeout=timeout, check=False
    )
