"""A job on the multiprocess executor: each step runs in a worker process started by Dagster,
which imports this module by name and finds headwater through HEADWATER_URI/HEADWATER_HOME."""

import dagster as dg

from headwater.adapters.dagster import HeadwaterIOManager


@dg.op
def produce() -> list[int]:
    return [1, 2, 3]


@dg.op
def total(numbers: list[int]) -> int:
    return sum(numbers)


# HeadwaterIOManager() wraps FilesystemIOManager(), which stores under the instance's storage dir.
@dg.job(executor_def=dg.multiprocess_executor, resource_defs={"io_manager": HeadwaterIOManager()})
def numbers() -> None:
    total(produce())
