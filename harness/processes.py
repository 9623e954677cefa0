"""Processes started in a process group of their own, so that stopping one stops its children.

A web server with its workers, a Celery worker with its pool, nginx with its workers:
`Process.stop` sends SIGTERM to the whole group, waits a grace period, then SIGKILLs
what is left of the group; `Process.kill` SIGKILLs it at once (a machine losing power,
for them). Output goes to a log file (appended to, each start marked), or to the
caller's own output when no log is given.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_MARK = "=== start"


class Process:
    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        cwd: Path = ROOT,
        **popen_options,
    ):
        self.name = name
        self.command = list(command)
        self.env = env
        self.log = log
        self.cwd = cwd
        self.popen_options = popen_options
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        output = None
        if self.log is not None:
            output = open(self.log, "a")  # noqa: SIM115 - the child holds it from here
            output.write(f"\n{START_MARK} {' '.join(self.command)} ({time.strftime('%H:%M:%S')})\n")
            output.flush()
        try:
            self.popen = subprocess.Popen(  # noqa: S603 - commands of our own
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,
                **self.popen_options,
            )
        finally:
            if output is not None:
                output.close()
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def output(self) -> str:
        """What the process wrote to its log since its last start."""
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace")
        return text[text.rfind(START_MARK) :]

    def signal_group(self, number: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, number)

    def kill(self) -> None:
        """SIGKILL to the process and every process of its group."""
        if self.popen is not None:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(30)

    def stop(self, grace: float = 20) -> bool:
        """SIGTERM to the group, SIGKILL to what is left of it after `grace` seconds; whether it stopped in time."""
        return stop_all([self], grace=grace) == []


def stop_all(processes: Iterable[Process], *, grace: float = 20) -> list[Process]:
    """Stop every process at once (SIGTERM, then SIGKILL after a shared `grace`); those that needed the SIGKILL."""
    started = [process for process in processes if process.popen is not None]
    for process in started:
        if process.alive:
            process.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    killed = []
    for process in started:
        try:
            process.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            killed.append(process)
        process.signal_group(signal.SIGKILL)  # whatever is left of its group
        process.popen.wait(30)
    return killed


class Processes:
    """The processes a run started, each by name with its log in `log_dir`, stopped together at the end."""

    def __init__(self, *, env: dict[str, str] | None = None, log_dir: Path | None = None):
        self.env = env
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, command: Sequence[str], *, env: dict[str, str] | None = None, **options) -> Process:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            options.setdefault("log", self.log_dir / f"{name}.log")
        environment = self.env if env is None else {**(self.env or os.environ), **env}
        process = Process(name, command, env=environment, **options).start()
        self.started.append(process)
        return process

    def stop_all(self, grace: float = 20) -> list[Process]:
        return stop_all(reversed(self.started), grace=grace)
