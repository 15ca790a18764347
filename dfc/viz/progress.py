"""Progress of a run: a live rich status line on a terminal, plain lines otherwise
(logs, CI), nothing with ``--quiet`` but warnings. Always on standard error."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.live = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.status: Any = None  # rich's Status and Console, on a terminal
        self.console: Any = None
        self.t0 = time.monotonic()

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console

            self.console = Console(file=self.stream)
            self.status = self.console.status("starting")
            self.status.start()
        return self

    def say(self, message: str) -> None:
        if self.quiet and not message.startswith("warning:"):  # a failed checkpoint, a stopped task
            return
        if self.status is not None:
            if message.startswith(("iteration", "---")):
                self.status.update(message)
            else:
                self.console.print(f"[dim]{time.monotonic() - self.t0:7.1f} s[/dim]  {message}", highlight=False)
                self.status.update(message)
        else:
            print(message, file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self.status is not None:
            self.status.stop()
