"""Configuration of the Airflow plugin, and the Observer it records through.

Each setting is read from the `[headwater]` section of airflow.cfg (or Airflow's own environment
form, `AIRFLOW__HEADWATER__<KEY>`), and otherwise from headwater's `HEADWATER_*` variables:

    [headwater]
    uri = postgresql://lineage-db:5432/headwater   # else HEADWATER_URI, else SQLite in the home
    home = /var/lib/headwater                       # else HEADWATER_HOME (holds the outbox)
    timeout = 10                                    # seconds per hook; else HEADWATER_TIMEOUT_S
    disabled = False                                # or HEADWATER_DISABLED=1: record nothing
    lineage_sources = inlets, outlets, events, hooks
    namespace = airflow                             # job namespace of the recorded runs

Settings are read once per process, and again when one of those variables changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headwater import config
from headwater.observe import EnvKeyed, Observer, observer_for

SECTION = "headwater"
# inlets/outlets: what the DAG declares; events: runtime outlet events (their extra, and the
# assets an AssetAlias named); hooks: what ObjectStoragePath and provider hooks read and wrote.
SOURCES = frozenset({"inlets", "outlets", "events", "hooks"})
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    uri: str | None = None
    home: str | None = None
    timeout: float | None = None
    disabled: bool = False
    sources: frozenset[str] = SOURCES
    namespace: str = "airflow"


def _airflow_conf() -> Any:
    try:  # in a task process: the Task SDK's configuration
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - Airflow without the Task SDK
        from airflow.configuration import conf
    return conf


def _option(conf: Any, key: str) -> str | None:
    try:
        value = conf.get(SECTION, key, fallback=None)
    except Exception:  # noqa: BLE001 - a broken airflow.cfg must not break a task
        return None
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _timeout(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw else 0.0
    except ValueError:
        return None  # a typo falls back to HEADWATER_TIMEOUT_S, then the default
    return value if value > 0 else None


# What _read() depends on besides airflow.cfg: each option in Airflow's environment forms (the
# value, a command that prints it, a secret naming it), and headwater's own switch.
# The keys that override a headwater setting come from the registry; the other two are Airflow's own.
_OPTIONS = tuple(s.airflow for s in config.SETTINGS if s.airflow) + ("lineage_sources", "namespace")
_VARIABLES = tuple(
    f"AIRFLOW__{SECTION.upper()}__{option.upper()}{form}" for option in _OPTIONS for form in ("", "_CMD", "_SECRET")
) + ("HEADWATER_DISABLED",)


def load() -> Settings:
    """The settings now. Cached until one of the variables they come from changes (airflow.cfg
    itself is read once per process, as Airflow does)."""
    return _cache.get()


def _read() -> Settings:
    conf = _airflow_conf()
    raw_sources = _option(conf, "lineage_sources")
    sources = SOURCES
    if raw_sources is not None:
        sources = frozenset(s.strip().lower() for s in raw_sources.split(",") if s.strip()) & SOURCES
    return Settings(
        uri=_option(conf, "uri"),
        home=_option(conf, "home"),
        timeout=_timeout(_option(conf, "timeout")),
        disabled=(_option(conf, "disabled") or "").lower() in _TRUE or config.disabled(),
        sources=sources,
        namespace=_option(conf, "namespace") or "airflow",
    )


_cache: EnvKeyed[Settings] = EnvKeyed(_VARIABLES, _read)


def disabled_at_start() -> bool:
    """True when the plugin should register nothing at all (read once, when Airflow loads it)."""
    try:
        return load().disabled
    except Exception:  # noqa: BLE001 - never stop Airflow from loading its plugins
        return False


def observer(settings: Settings) -> Observer:
    """headwater's Observer with the settings above in place of the HEADWATER_* variables."""
    return observer_for("airflow", settings.uri, settings.home, timeout=settings.timeout, disabled=settings.disabled)
