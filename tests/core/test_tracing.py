"""Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: then the web process imports no tracing
SDK, exporter or instrumentation; set, it starts with the instrumentations on (core/tracing.py).

(redis-py imports the SDK's metrics module by itself whenever the SDK is installed, for metrics of its
own that nothing here turns on: that import is not ours, and is left out of the count.)"""

import subprocess
import sys

from tests.processes import ROOT

WEB_THEN_OUTBOUND = (
    "import sys, config.asgi; OURS = ('opentelemetry.sdk.trace', 'opentelemetry.instrumentation', "
    "'opentelemetry.exporter'); from core import outbound, tracing; "
    "print(sorted({'.'.join(m.split('.')[1:3]) for m in sys.modules if m.startswith(OURS)})); "
    "print(tracing.client_span('POST', 'http://127.0.0.1/') is tracing.NO_SPAN)"
)


def run_web(**environment: str) -> list[str]:
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", "PATH": "/usr/bin:/bin", **environment}
    done = subprocess.run(
        [sys.executable, "-c", WEB_THEN_OUTBOUND], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_off_the_web_process_imports_nothing_of_opentelemetry():
    assert run_web() == ["[]", "True"]


def test_on_the_web_process_is_instrumented():
    imported, off = run_web(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert off == "False"
    for module in ("sdk.trace", "instrumentation.django", "instrumentation.celery", "exporter.otlp"):
        assert f"'{module}'" in imported
