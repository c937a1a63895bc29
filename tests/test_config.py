"""One registry of settings: everything read is declared, documented, and shown by `headwater config`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from headwater import config
from headwater.cli import cli

ROOT = Path(__file__).resolve().parent.parent
# Names that look like settings but are not read from the environment.
NOT_SETTINGS = {"HEADWATER_NAMESPACE_UUID"}  # a constant of run ids, named in a comment


def source_files() -> list[Path]:
    return [p for top in ("core", "adapters") for p in (ROOT / top).rglob("*.py")]


def test_every_variable_the_code_names_is_in_the_registry() -> None:
    named = set()
    for path in source_files():
        named |= set(re.findall(r"\bHEADWATER_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert named - NOT_SETTINGS == set(config.BY_NAME), "declare it in headwater.config.SETTINGS"


def test_only_the_registry_reads_the_environment() -> None:
    reading = re.compile(r"""(?:environ(?:\.get)?|getenv)\(\s*["']HEADWATER_|environ\[\s*["']HEADWATER_""")
    offenders = [
        str(p.relative_to(ROOT)) for p in source_files() if p.name != "config.py" and reading.search(p.read_text())
    ]
    assert offenders == []


def test_every_setting_has_a_reader_and_a_meaning() -> None:
    for setting in config.SETTINGS:
        assert setting.doc.endswith(".") and len(setting.doc) > 20, setting.name
        config.get(setting.name, {})  # a reader exists and copes with an empty environment


def test_typed_values_and_fallbacks() -> None:
    env = {
        "HEADWATER_HOME": "/data/hw",
        "HEADWATER_TIMEOUT_S": "2.5",
        "HEADWATER_HASH_THREADS": "3",
        "HEADWATER_DISABLED": "yes",
    }
    assert config.get("HEADWATER_HOME", env) == Path("/data/hw")
    assert config.get("HEADWATER_URI", env) == "sqlite:////data/hw/headwater.db"
    assert config.get("HEADWATER_BLOB_URI", env) == "/data/hw/blobs"
    assert (config.get("HEADWATER_TIMEOUT_S", env), config.get("HEADWATER_HASH_THREADS", env)) == (2.5, 3)
    assert config.get("HEADWATER_DISABLED", env) is True
    assert config.get("HEADWATER_SERVER_STORE", env) == "sqlite:////data/hw/headwater.db"
    # a typo falls back to the default instead of breaking the pipeline that set it
    assert config.get("HEADWATER_TIMEOUT_S", {"HEADWATER_TIMEOUT_S": "ten"}) == 10.0
    assert config.get("HEADWATER_OL_NAMESPACE", {"HEADWATER_OL_NAMESPACE": "  "}) == "headwater"


def test_the_docs_show_the_registry() -> None:
    assert config.markdown_table() in (ROOT / "docs" / "configuration.md").read_text()


def test_headwater_config_shows_values_sources_and_masks_secrets(tmp_path: Path) -> None:
    env = {
        "HEADWATER_TOKEN": "s3cret-token",
        "HEADWATER_URI": "postgresql://me:pa55@db:5432/hw",
        "HEADWATER_TIMEOUT_S": "3",
    }
    done = CliRunner().invoke(cli, ["--home", str(tmp_path), "config", "--json"], env=env)
    assert done.exit_code == 0, done.output
    rows = {r["name"]: r for r in json.loads(done.output)}
    assert set(rows) == set(config.BY_NAME)
    assert (rows["HEADWATER_HOME"]["value"], rows["HEADWATER_HOME"]["source"]) == (str(tmp_path), "--home option")
    assert (rows["HEADWATER_TOKEN"]["value"], rows["HEADWATER_TOKEN"]["source"]) == ("****", "environment")
    assert rows["HEADWATER_URI"]["value"] == "postgresql://me:****@db:5432/hw"
    assert (rows["HEADWATER_TIMEOUT_S"]["value"], rows["HEADWATER_HASH_THREADS"]["source"]) == ("3.0", "default")
    assert "s3cret" not in done.output and "pa55" not in done.output
    text = CliRunner().invoke(cli, ["config"], env=env).output
    assert "HEADWATER_TOKEN" in text and "s3cret" not in text


def test_the_airflow_sections_keys_come_from_the_registry() -> None:
    from headwater.adapters.airflow import settings as airflow_settings  # no Airflow needed to import

    declared = {s.airflow for s in config.SETTINGS if s.airflow}
    assert declared == {"uri", "home", "timeout", "disabled"}
    assert set(airflow_settings._OPTIONS) == declared | {"lineage_sources", "namespace"}
    assert set(airflow_settings.Settings.__dataclass_fields__) >= declared  # each key has a field it sets
