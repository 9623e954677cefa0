from typing import TextIO


class ProgressBar:
    """A one-line progress bar, redrawn in place when its percentage changes."""

    WIDTH = 30

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.stage: str | None = None
        self.percent = -1

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.finish()
            self.stage, self.percent = stage, -1
        percent = 100 * done // total if total else 100
        if percent == self.percent:
            return
        self.percent = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{stage:<9} [{bar}] {percent:3d}% {done}/{total}")
        self.stream.flush()

    def finish(self) -> None:
        if self.stage is not None:
            self.stream.write("\n")
            self.stream.flush()
            self.stage = None
