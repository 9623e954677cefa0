"""The summary table of each scenario: printed at the end of the run and written to faults/results/."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Scenario:
    title: str
    command: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    outcome: str = "not finished"

    def add(self, what: str, figure) -> None:
        self.rows.append((what, str(figure)))

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", f"`{self.command}`: **{self.outcome}**", "", "| what | figure |", "|---|---|"]
        lines += [f"| {what} | {figure} |" for what, figure in self.rows]
        return "\n".join(lines) + "\n"


@dataclass
class Report:
    scenarios: list[Scenario] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def scenario(self, title: str, command: str) -> Scenario:
        scenario = Scenario(title, command)
        self.scenarios.append(scenario)
        return scenario

    def markdown(self) -> str:
        head = [
            f"# Fault suite results ({self.started:%Y-%m-%d %H:%M} UTC)",
            "",
            f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            "PostgreSQL, Redis, the service's processes and its peers on the same machine (loopback).",
            "",
        ]
        return "\n".join(head) + "\n".join(scenario.markdown() for scenario in self.scenarios)

    def write(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"faults-{self.started:%Y%m%d-%H%M}.md"
        path.write_text(self.markdown())
        return path
