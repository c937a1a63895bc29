"""The flows the Prefect tests run: plain Prefect code, tracked by the tests with one line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from prefect import flow, task
from prefect.assets import add_asset_metadata, materialize


@task
def extract(src: Path) -> Path:
    """Drop the rows without an amount."""
    rows = [line for line in src.read_text().splitlines() if not line.endswith(",")]
    out = src.with_name("clean.csv")
    out.write_text("\n".join(rows) + "\n")
    return out


@task
def transform(clean: Path) -> Path:
    lines = clean.read_text().splitlines()[1:]
    out = clean.with_name("features.json")
    out.write_text(json.dumps({"rows": len(lines), "total": sum(int(x.split(",")[1]) for x in lines)}))
    return out


@task
def train(features: Path) -> Path:
    stats = json.loads(features.read_text())
    out = features.with_name("model.json")
    out.write_text(json.dumps({"mean": stats["total"] / stats["rows"]}))
    return out


@flow
def pipeline(src: Path) -> Path:
    return train(transform(extract(src)))


@task
def count_words(path: Path) -> Path:
    out = path.with_suffix(".count")
    out.write_text(str(len(path.read_text().split())))
    return out


@flow
def word_counts(files: list[Path]) -> list[Path]:
    return [future.result() for future in count_words.map(files)]


@task
def validate(clean: Path) -> Path:
    raise ValueError(f"{clean.name}: 2 rows have a negative amount")


@task
def publish(report: Path) -> Path:  # pragma: no cover - never runs: its upstream fails
    return report


@flow
def checked(src: Path):
    clean = extract(src)
    report = validate.submit(clean)
    publish.submit(report).wait()
    return report


@flow
def featurize(clean: Path) -> Path:
    return transform(clean)


@flow
def outer(src: Path) -> Path:
    return train(featurize(extract(src)))


@task
async def fetch(src: Path) -> Path:
    await asyncio.sleep(0)
    out = src.with_name(src.stem + ".fetched")
    out.write_bytes(src.read_bytes())
    return out


@flow
async def async_pipeline(srcs: list[Path]) -> Path:
    fetched = await asyncio.gather(*(fetch(src) for src in srcs))
    return train(transform(extract(fetched[0])))


def materializing(report: str, raw: str, table: str):
    """A flow with @materialize: `report` is written from `raw` (and a table headwater cannot read)."""

    @materialize(report, asset_deps=[raw, table])
    def build_report() -> None:
        from headwater.refs import file_uri_to_path

        source = file_uri_to_path(raw).read_text()
        file_uri_to_path(report).write_text(source.upper())
        add_asset_metadata(report, {"rows": len(source.splitlines()), "source": "raw"})

    @flow
    def reporting() -> None:
        build_report()

    return reporting


@task
def export(src: Path) -> dict:
    """Writes a file and returns only a summary: the file is declared with log_output."""
    from headwater.adapters.prefect import log_output

    out = src.with_name("export.bin")
    out.write_bytes(src.read_bytes()[::-1])
    log_output(out, name="exports", type="dataset", metadata={"rows": 3})
    return {"rows": 3}


@task
def report_rows(stats: dict) -> int:
    return stats["rows"]


@flow
def exporting(src: Path) -> int:
    return report_rows(export(src))


@task
def fit(src: Path):
    import headwater as hw

    out = src.with_name("weights.bin")
    out.write_bytes(b"w" * 64)
    return hw.Output("weights", out, type="model", metadata={"epochs": 3}, aliases=["candidate"], tags=["demo"])


@task
def evaluate(weights, baseline) -> float:
    return 0.9


@flow
def modeling(src: Path, baseline) -> float:
    return evaluate(fit(src), baseline)


@task
def size_of(path: Path) -> int:
    return path.stat().st_size


@task
def write_into(src: Path, workdir: Path) -> Path:
    out = workdir / "copy.csv"
    out.write_bytes(src.read_bytes())
    return out


@flow
def copying(src: Path, workdir: Path) -> Path:
    return write_into(src, workdir)


@task
def double(path: Path) -> Path:
    out = path.with_suffix(".double")
    out.write_text(path.read_text() * 2)
    return out


@task
def calls_a_task(path: Path) -> Path:
    return double(path)


@flow
def nesting(src: Path) -> Path:
    return calls_a_task.submit(src).result()


class PowerCut(BaseException):
    """Not an Exception: Prefect records the flow run as Crashed."""


@flow
def crashing(src: Path) -> None:
    extract(src)
    raise PowerCut("the machine went away")


@task
def export_n(src: Path, n: int) -> int:
    """Writes `export-<n>` and returns `n`: Prefect links 300 to this run, but not 3 (interned)."""
    from headwater.adapters.prefect import log_output

    out = src.with_name(f"export-{n}")
    out.write_text(src.read_text() * n)
    log_output(out)
    return n


@task
def report(n: int) -> None:
    return None


@flow
def small_results(src: Path) -> None:
    report(export_n(src, 3))
    report(export_n(src, 300))
    report(export_n(src, 5))


@task
def keep(src: Path, uri: str):
    import fsspec

    import headwater as hw

    out = src.with_name("weights.bin")
    out.write_bytes(b"w" * 64)
    with fsspec.open(uri, "wb") as f:
        f.write(b"remote")
    return [hw.Output("weights", out, type="model", store=True), hw.Output("remote", uri, store=True)]


@flow
def keeping(src: Path, uri: str) -> None:
    keep(src, uri)


@flow
def fails_after(src: Path, extract_task) -> None:
    extract_task(src)
    raise ValueError("the flow itself failed")


@flow
async def async_untracked(src: Path, fetch_task) -> Path:
    return await fetch_task(src)
