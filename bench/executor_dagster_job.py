"""The Dagster job bench/executor.py runs under the multiprocess executor: a chain of N ops.

Its own module because every step process (spawned, a fresh interpreter) reconstructs the job
by importing it; the set-up comes from the environment the steps inherit. No
`from __future__ import annotations`: Dagster reads the annotations of what it builds.
"""

import os

import dagster as dg


def _io_manager() -> dg.IOManagerDefinition | dg.ConfigurableIOManager:
    storage = dg.FilesystemIOManager(base_dir=os.environ["HW_BENCH_DATA"])
    if os.environ["HW_BENCH_SETUP"] == "without":
        return storage  # headwater not even imported
    from headwater.adapters.dagster import HeadwaterIOManager

    return HeadwaterIOManager(inner=storage)


def _op(i: int) -> dg.OpDefinition:
    if i == 0:

        @dg.op(name="step_000")
        def first() -> str:
            return "input 0\n"

        return first

    @dg.op(name=f"step_{i:03d}")
    def step(previous: str) -> str:
        return previous + f"step {i}\n"

    return step


def bench_job() -> dg.JobDefinition:
    ops = [_op(i) for i in range(int(os.environ["HW_BENCH_TASKS"]))]

    # One step at a time: the next step's process starts only once the previous one has exited,
    # so the time from one step's start to the next holds the whole process, teardown included.
    @dg.job(
        name="hw_exec",
        resource_defs={"io_manager": _io_manager()},
        executor_def=dg.multiprocess_executor.configured({"max_concurrent": 1}),
    )
    def hw_exec() -> None:
        out = ops[0]()
        for op in ops[1:]:
            out = op(out)

    return hw_exec
