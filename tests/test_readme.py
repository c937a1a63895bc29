"""The README runs as written: its code blocks, in order, in an empty folder.

A block that cannot run here is preceded by `<!-- not run: REASON -->`; every other ```bash
and ```python block runs, bash as it is and Python through `python -`, in one shell, so an
`export` holds for what follows. Then the graph the tour made is asserted exactly.
"""

from __future__ import annotations

from pathlib import Path

import headwater as hw
from tests.markdown_blocks import blocks, run_script, script

ROOT = Path(__file__).resolve().parent.parent


def test_every_block_runs_or_says_why_not() -> None:
    found = blocks((ROOT / "README.md").read_text())
    assert found, "no code block found"
    for lang, code, why in found:
        assert why is None or len(why.split()) >= 3, f"say why a block is not run: {code[:80]}"
        assert lang in ("bash", "python") or why is not None, code[:80]


def test_the_readme_runs_top_to_bottom_in_an_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tour"
    folder.mkdir()
    done = run_script(script((ROOT / "README.md").read_text()), folder)  # this environment's python and headwater
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("users:v0\n")
    assert "churn-model-int8:v0 (model) [latest, production]\n└── quantize (manual, succeeded) run " in out
    assert "\n['users.csv']\n" in out
    assert "\n['churn-model-int8:v0', 'churn-model:v0']\nchurn-model-int8:v0\n" in out
    assert (folder / "restored" / "users.csv").read_text().count("Eve") == 1  # v0, before the takedown

    client = hw.Client(home=folder / ".headwater")
    try:
        assert {(r.job, r.status, tuple(r.inputs), tuple(r.outputs)) for r in client.runs()} == {
            ("train", "succeeded", ("users:v0",), ("churn-model:v0",)),
            ("quantize", "succeeded", ("churn-model:v0",), ("churn-model-int8:v0",)),
            ("evaluate", "succeeded", ("churn-model-int8:v0",), ("eval-report:v0",)),
        }
        assert {(a.name, a.latest, a.versions) for a in client.artifacts()} == {
            ("users", "v1", 2),
            ("churn-model", "v0", 1),
            ("churn-model-int8", "v0", 1),
            ("eval-report", "v0", 1),
        }
        assert client.get("churn-model-int8:production").ref == "churn-model-int8:v0"
        assert client.get("churn-model:candidate").ref == "churn-model:v0"
    finally:
        client.close()
