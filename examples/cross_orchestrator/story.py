"""One churn model's life across Airflow, Dagster, Prefect and a manual step, in one graph.

    make demo                                   # sets up the environments, then runs this
    python examples/cross_orchestrator/story.py [--work DIR] [--uri URI]

1. Airflow (`airflow dags test ingest_customers`) cleans two raw exports into a dataset.
2. Dagster trains a scikit-learn model on that dataset, through HeadwaterIOManager.
3. Prefect evaluates the model on two held-out sets and writes a report.
4. By hand: the model is quantized to int8, `headwater log` attaches the step, `headwater
   alias` marks the result `production`.
5. A privacy takedown deletes customers from the EU export; Airflow runs again.

Each orchestrator runs in its own environment (Airflow 3.3 and Prefect 3.9 cannot share one;
by default the ones `make test` builds under .nox/), every one recording into the same store.
It ends by asking headwater what is in production, what the takedown changed, and what was
built on the export as it was, then purges that old export (`headwater purge`: the file is a
reference, so it is reported and recorded in the audit log) and shows the audit log.
Orchestrator logs go to WORK/logs/.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from data import make_raw, take_down

from headwater.config import mask_uri

TAKEN_DOWN = {"eu-0042", "eu-0108", "eu-0311"}  # the customers who asked to be forgotten
ORCHESTRATORS = ("airflow", "dagster", "prefect")


class Story:
    def __init__(self, work: Path, uri: str | None, envs: dict[str, Path]) -> None:
        self.work, self.envs = work, envs
        self.data, self.logs = work / "data", work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.timings: list[tuple[str, float]] = []
        # A clean environment: the user's own HEADWATER_*/PREFECT_API_URL must not redirect it;
        # only a tracking server's token passes (HEADWATER_TOKEN or HEADWATER_TOKEN_FILE).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HEADWATER_", "PREFECT_", "AIRFLOW"))
            or k in ("HEADWATER_TOKEN", "HEADWATER_TOKEN_FILE")
        }
        env.update(
            HEADWATER_HOME=str(work / "headwater"),
            HEADWATER_DEMO_DATA=str(self.data),
            AIRFLOW_HOME=str(work / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(HERE / "airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            DAGSTER_HOME=str(work / "dagster"),
            PREFECT_HOME=str(work / "prefect"),
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
            PYTHONUNBUFFERED="1",
        )
        if uri:
            env["HEADWATER_URI"] = uri
        (work / "dagster").mkdir(parents=True, exist_ok=True)
        self.env = env
        self.headwater = shutil.which("headwater", path=str(Path(sys.executable).parent)) or "headwater"

    def timed(self, what: str, argv: list[str], log: str) -> None:
        """Run one orchestrator command, its output to a log file; on failure show its tail."""
        started = time.monotonic()
        with open(self.logs / log, "w") as out:
            done = subprocess.run(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.work, check=False)
        seconds = time.monotonic() - started
        self.timings.append((what, seconds))
        if done.returncode != 0:
            tail = (self.logs / log).read_text().splitlines()[-40:]
            sys.exit(f"{what} failed (exit {done.returncode}); the end of {self.logs / log}:\n" + "\n".join(tail))
        print(f"   {what}: done in {seconds:.1f} s (log: {self.logs / log})")

    def tool(self, orchestrator: str, name: str) -> str:
        return str(self.envs[orchestrator] / "bin" / name)

    def hw(self, *args: str, show: bool = True) -> str:
        """A headwater command, shown as the user would type it."""
        if show:
            print(f"$ headwater {shlex.join(args)}")
        started = time.monotonic()
        done = subprocess.run([self.headwater, *args], env=self.env, capture_output=True, text=True, check=False)
        self.timings.append((f"headwater {args[0]}", time.monotonic() - started))
        if done.returncode != 0:
            sys.exit(f"headwater {shlex.join(args)} failed: {done.stderr.strip()}")
        if show:
            print(done.stdout, end="")
        return done.stdout

    def airflow_ingest(self, log: str) -> None:
        self.timed(
            "Airflow dags test ingest_customers",
            [self.tool("airflow", "airflow"), "dags", "test", "ingest_customers"],
            log,
        )

    def run(self) -> None:
        print(f"== 0. raw data and held-out sets in {self.data}")
        files = make_raw(self.data)
        raw_eu = files["raw_eu"].as_uri()
        clean = (self.data / "clean" / "customers").as_uri()

        print("\n== 1. Airflow ingests the raw exports into a cleaned dataset")
        self.timed("airflow db migrate", [self.tool("airflow", "airflow"), "db", "migrate"], "airflow-db.log")
        self.airflow_ingest("airflow-1.log")

        print("\n== 2. Dagster trains the churn model on it")
        self.timed(
            "Dagster materialize churn_model", [self.tool("dagster", "python"), str(HERE / "train.py")], "dagster.log"
        )

        print("\n== 3. Prefect evaluates the model on two held-out sets")
        self.timed(
            "Prefect flow evaluate-churn-model",
            [self.tool("prefect", "python"), str(HERE / "evaluate.py")],
            "prefect.log",
        )

        print("\n== 4. By hand: quantize to int8, attach the step, promote it")
        model = self.hw("show", "churn_model:latest", "--json", show=False)
        report = self.hw("show", "churn_report:latest", "--json", show=False)
        model_ref, report_ref = _ref(model), _ref(report)
        out = self.work / "manual" / "churn_model_int8.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"$ python quantize.py {model_ref} {report_ref} {out}")
        subprocess.run(
            [sys.executable, str(HERE / "quantize.py"), model_ref, report_ref, str(out)], env=self.env, check=True
        )
        self.hw(
            "log",
            "--job",
            "quantize-int8",
            "--input",
            model_ref,
            "--input",
            report_ref,
            "--output",
            f"churn_model_int8={out}",
            "--type",
            "churn_model_int8=model",
            "--param",
            "bits=8",
        )
        self.hw("alias", "churn_model_int8:latest", "production")

        print(f"\n== 5. A privacy takedown: {len(TAKEN_DOWN)} customers deleted from the EU export; Airflow runs again")
        deleted = take_down(files["raw_eu"], TAKEN_DOWN)
        print(f"   {deleted} rows deleted from {files['raw_eu']}")
        self.airflow_ingest("airflow-2.log")

        print("\n== What is in production, and what was it made from, back to the raw files?")
        self.hw("upstream", "churn_model_int8:production")
        print("\n== What did the takedown change in the cleaned dataset?")
        self.hw("diff", f"{clean}:v0", f"{clean}:v1")
        print("\n== What was built on the EU export as it was before the takedown?")
        self.hw("impact", f"{raw_eu}:v0")
        print("\n== The takedown carried out: the old export purged wherever headwater keeps it, and recorded")
        self.hw("purge", f"{raw_eu}:v0", "--reason", f"erasure requests of {len(TAKEN_DOWN)} customers", "--yes")
        self.hw("audit")

        print("\n== Where the time went")
        for what, seconds in self.timings:
            if not what.startswith("headwater "):
                print(f"   {seconds:6.1f} s  {what}")
        commands = [s for w, s in self.timings if w.startswith("headwater ")]
        print(f"   {sum(commands):6.1f} s  {len(commands)} headwater commands")


def _ref(shown_json: str) -> str:
    return json.loads(shown_json)["ref"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="a new folder for data, store and logs (default: a temp folder)")
    parser.add_argument(
        "--uri",
        help="the store: sqlite:///…, postgresql://…, or a tracking server http(s)://… "
        "(its token in HEADWATER_TOKEN); default SQLite in WORK/headwater",
    )
    for name in ORCHESTRATORS:
        parser.add_argument(
            f"--{name}-env",
            type=Path,
            default=ROOT / ".nox" / name,
            help=f"the virtualenv with headwater[{name}] (default: .nox/{name})",
        )
    args = parser.parse_args(argv)
    envs = {name: getattr(args, f"{name}_env").absolute() for name in ORCHESTRATORS}
    missing = [f"{name} ({path})" for name, path in envs.items() if not (path / "bin" / "python").exists()]
    if missing:
        sys.exit(f"no environment for {', '.join(missing)}: run `make demo`, which builds them")
    work = (args.work or Path(tempfile.mkdtemp(prefix="headwater-demo."))).absolute()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    Story(work, args.uri, envs).run()
    print(f"\nThe story took {time.monotonic() - started:.0f} s. Its graph stays in {work}; explore it:")
    shown_uri = mask_uri(args.uri or "")  # never print a password
    prefix = f"HEADWATER_URI={shown_uri}" if args.uri else f"HEADWATER_HOME={work / 'headwater'}"
    headwater = shutil.which("headwater", path=str(Path(sys.executable).parent)) or "headwater"
    for command in ("graph churn_model_int8:production --format mermaid", "runs", "ls"):
        print(f"  {prefix} {headwater} {command}")
    print("or in a web browser (then open the lineage of churn_model_int8:production):")
    print(f"  {prefix} {headwater} ui")
    return 0


if __name__ == "__main__":
    sys.exit(main())
