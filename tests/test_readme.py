"""The README's examples, run as written and in order against `bin/run` (what `make run` starts:
web, worker and scheduler), on the test's PostgreSQL and Redis.

Each `curl` (and `bin/manage`) line of the README's sh blocks runs in bash with $TOKEN set to the
token `bin/run` printed, on the port the test chose instead of 8000; its status and answer must
be what the README shows in the comment after it: `# 201`, `# 200 example value` (that body),
`# 200 {"items": [...]}` (that shape: the keys, and the text values but example tokens and those
elided with "..."). A
line without such a comment must answer 2xx. Lines for other hosts (sbm.example.org) are not run.
"""

import json
import re
import shutil
import signal
import subprocess
import sys

import pytest

from harness.processes import Process
from harness.waiting import free_port, wait_for_http, wait_until
from tests.processes import ROOT, child_environment

README = ROOT / "README.md"
LOCAL = "http://localhost:8000"
ANSWER = re.compile(r"^# (?P<status>\d{3})?\b,?\s*(?P<body>.*)$")
BASH = shutil.which("bash") or "/bin/bash"
INLINE = re.compile(r"\s#\s(.*)$")
STATUS_MARK = "\n__STATUS__"
TOKEN = re.compile(r"[0-9a-f]{40}")  # an example token: any token will do


def examples(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, command, the answer comment after it or None) of every runnable line of the sh blocks."""
    found, block, command, start = [], False, "", 0
    lines = text.splitlines()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("```"):
            block = line == "```sh"
            continue
        if not block:
            continue
        if command:
            command += " " + line.rstrip("\\").strip()
        elif ("curl " in line or line.startswith("bin/manage ")) and not line.startswith("#"):
            command, start = line.rstrip("\\").strip(), number
        if command and not line.endswith("\\"):
            following = lines[number].strip() if number < len(lines) else ""
            answer = following if ANSWER.match(following) and following[2:3].isdigit() else None
            inline = INLINE.search(command)  # `curl ...   # 204` says its answer on its own line
            if inline:
                command, answer = command[: inline.start()].rstrip(), "# " + inline[1]
            found.append((start, command, answer))
            command = ""
    return [example for example in found if LOCAL in example[1] or example[1].startswith("bin/manage ")]


def shape_matches(expected, actual) -> bool:
    """Whether `actual` has `expected`'s shape: its keys, list items and text values ("..." elides)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and shape_matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) >= len(expected) and all(map(shape_matches, expected, actual))
    if isinstance(expected, str):
        return isinstance(actual, str) and ("..." in expected or bool(TOKEN.fullmatch(expected)) or expected == actual)
    return type(expected) is type(actual)


def shell(line: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    """`line` run by bash in the checkout, as a reader would paste it."""
    return subprocess.run([BASH, "-c", line], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60)


def check(number: int, command: str, answer: str | None, status: int, body: str) -> None:
    where = f"README.md line {number}: {command}\nanswered {status} {body[:500]}"
    expected = ANSWER.match(answer.split("  ")[0] if answer else "")
    if expected is None or expected["status"] is None:
        assert 200 <= status < 300, where
        return
    assert status == int(expected["status"]), where
    shown = expected["body"].strip()
    if shown.startswith(("{", "[")):
        assert shape_matches(json.loads(shown), json.loads(body)), where
    elif shown and not shown.startswith("or "):
        assert body == shown, where


# A command started as from a terminal, where Ctrl-C is never ignored: the suite itself may run with SIGINT
# ignored (started in the background by a shell without job control), and a shell that starts with a signal
# ignored cannot trap it.
AS_FROM_A_TERMINAL = (
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])",
)


@pytest.fixture
def service(transactional_db, django_db_blocker, tmp_path):
    """`bin/run` on a free port with the test's database and Redis; (base URL, token, process)."""
    with django_db_blocker.unblock():
        environment = child_environment(PORT=str(port := free_port()), ENV_FILE="/dev/null", DEBUG="true")
    environment.pop("DJANGO_SETTINGS_MODULE")  # the real settings, as make run has them
    run = Process("run", [*AS_FROM_A_TERMINAL, str(ROOT / "bin" / "run")], env=environment, log=tmp_path / "run.log")
    run.start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/health/", timeout=120)
        token = wait_until(lambda: re.search(r"API token\s+([0-9a-f]{40})", run.output()), what="the token", timeout=5)
        yield f"http://127.0.0.1:{port}", token[1], run
    finally:
        if run.alive:  # as Ctrl-C would: honcho stops the processes it started in groups of their own
            run.signal_group(signal.SIGINT)
            try:
                run.popen.wait(60)
            except subprocess.TimeoutExpired:
                run.stop(grace=30)


def test_the_readme_examples_run_as_written_in_order(service):
    base, token, run = service
    assert "listening on 127.0.0.1" in run.output()
    assert "may call: 127.0.0.0/8,::1/128" in run.output()
    found = examples(README.read_text())
    assert len(found) >= 20
    for number, command, answer in found:
        line = command.replace(LOCAL, base)
        if line.startswith("bin/manage "):
            done = shell(line, run.env)
            assert done.returncode == 0, f"README.md line {number}: {command}\n{done.stdout}{done.stderr}"
            continue
        stream = "text/event-stream" in line  # answers, then streams until stopped
        flags = f"-sS -w '{STATUS_MARK}%{{http_code}}' --max-time {3 if stream else 40} "
        done = shell(re.sub(r"\bcurl ", "curl " + flags, line, count=1), {**run.env, "TOKEN": token})
        assert done.returncode == (28 if stream else 0), f"README.md line {number}: {command}\n{done.stderr}"
        body, _, status = done.stdout.rpartition(STATUS_MARK)
        check(number, command, answer, int(status), body)


def test_ctrl_c_stops_every_process_and_ends_with_success(service):
    _, _, run = service
    run.signal_group(signal.SIGINT)  # what Ctrl-C in its terminal does
    assert run.popen.wait(60) == 0
    assert run.output().rstrip().endswith("Stopped.")


def test_the_development_environment_caches_bytecode_even_where_the_shell_says_not_to():
    # A second start is quick because imports are not compiled again (README: a second start).
    environment = child_environment(PYTHONDONTWRITEBYTECODE="1", ENV_FILE="/dev/null")
    done = shell('. bin/environment && echo "[${PYTHONDONTWRITEBYTECODE-unset}]"', environment)
    assert done.stdout.strip() == "[unset]", done.stderr
