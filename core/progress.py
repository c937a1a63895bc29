"""A progress bar for work that takes more than a moment: on a terminal only, never in logs."""

from __future__ import annotations

import sys
from typing import Any

# Below this much data the work is over before a bar would be worth drawing.
MIN_BYTES = 256 << 20


class ByteProgress:
    """`with ByteProgress("hashing", total) as bar: bar.advance(n)`; silent unless wanted (None:
    only when stderr is a terminal and `total` is large)."""

    def __init__(self, label: str, total: int, wanted: bool | None = None) -> None:
        show = wanted if wanted is not None else total > MIN_BYTES and sys.stderr.isatty()
        self._bar: Any = None
        if show and total > 0:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

            self._bar = Progress(
                label,
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task(label, total=total)

    def __enter__(self) -> ByteProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)
