"""Progress on long work: a rich bar on a terminal, one line per step otherwise (logs, make, CI)."""
from __future__ import annotations

import sys
import time
from typing import Any


class Steps:
    """``with Steps(total, "verify fashion_mlp") as p: p.step("tflite_int8 on litert") ...``"""

    def __init__(self, total: int, title: str, *, stream: Any = None):
        self.total, self.title, self.done = total, title, 0
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._task: Any = None
        self._started = time.perf_counter()

    def __enter__(self) -> "Steps":
        if getattr(self.stream, "isatty", lambda: False)():
            try:
                from rich.console import Console
                from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                           TimeElapsedColumn)
            except ImportError:  # pragma: no cover - rich is optional on a Pi
                return self
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(file=self.stream), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.total)
        return self

    def step(self, what: str) -> None:
        """Announce the step about to run."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self.title}: {what}")
        else:
            print(f"[{self.done + 1}/{self.total}] {self.title}: {what}", file=self.stream, flush=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        print(f"{self.title}: {self.done}/{self.total} steps in {time.perf_counter() - self._started:.1f} s",
              file=self.stream, flush=True)
