"""The package-dir mapping (core/ -> headwater, adapters/ -> headwater.adapters) ships whole."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def declared_packages() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(config["packages"])


def package_folders() -> set[str]:
    found = set()
    for top, name in (("core", "headwater"), ("adapters", "headwater.adapters")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_folder_with_an_init_is_in_the_packages_list() -> None:
    assert package_folders() == declared_packages()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    return next(out.glob("headwater-*.whl"))


@pytest.mark.slow
def test_wheel_holds_migrations_and_template(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "headwater/migrations/script.py.mako" in names
    assert "headwater/migrations/versions/0001_initial_schema.py" in names
    assert "headwater/adapters/__init__.py" in names
    # the web UI's templates, its own JS and CSS, and the vendored files with their licences
    for name in (
        "server/ui/templates/base.html",
        "server/ui/templates/lineage.html",
        "server/static/lineage.js",
        "server/static/ui.css",
        "server/static/vendor/vendor.json",
        "server/static/vendor/dagrejs-dagre/dagre.min.js",
        "server/static/vendor/dagrejs-dagre/LICENSE",
        "server/static/vendor/redoc/redoc.standalone.js",
    ):
        assert f"headwater/{name}" in names, name
    assert not any(n.startswith(("core/", "tests/")) for n in names)


@pytest.mark.slow
def test_a_database_is_upgraded_from_the_built_wheel(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True)
    db = tmp_path / "hw.db"
    done = subprocess.run(
        [str(venv / "bin" / "headwater"), "db", "upgrade"],
        env={"HEADWATER_URI": f"sqlite:///{db}", "HEADWATER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the source tree: the installed wheel must carry everything
    )
    assert done.returncode == 0, done.stderr
    from headwater.store.migrate import head_revision

    assert f"schema at revision {head_revision()}" in done.stdout
    (tmp_path / "a.txt").write_text("from the wheel")
    env = {"HEADWATER_URI": f"sqlite:///{db}", "HEADWATER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    logged = subprocess.run(
        [str(venv / "bin" / "headwater"), "log", "--job", "smoke", "--output", "a=a.txt", "--json"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert logged.returncode == 0, logged.stderr
    listed = subprocess.run(
        [str(venv / "bin" / "headwater"), "ls", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert [(a["name"], a["latest"]) for a in json.loads(listed.stdout)] == [("a", "v0")]
    import sqlite3

    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"artifacts", "versions", "entries", "runs", "edges", "aliases", "alembic_version"} <= tables
