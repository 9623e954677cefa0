"""OpenTelemetry traces: a request followed through the web, Celery tasks and the outbound calls they make.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set. Off, nothing of OpenTelemetry is
imported and the outbound engine's hooks below are a check of one module global.
On (`tracing_start`, from CoreConfig.ready() in every process), the standard
instrumentations trace Django's requests, Celery's task publishing and runs (the
trace context travels in the task's headers), Redis commands and psycopg queries,
and spans go to the OTLP/HTTP endpoint in batches. The SDK reads the other OTEL_*
variables itself (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, OTEL_EXPORTER_OTLP_HEADERS...).

Outbound requests go through the service's own HTTP/1 engine (core/outbound.py), which
no instrumentation knows: `client_span` makes the CLIENT span of each request and the
W3C `traceparent` header that carries it to the peer, and `carried` lets a coroutine
the engine runs on its own loop (another thread) keep the caller's trace context.
The lean cache and topics apps are not traced: they are the hot paths.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine, Mapping
from typing import Any

from yarl import URL

_tracer = None  # the tracer of outbound spans while tracing is on; None when off
_provider = None
_instrumentors: list = []


def tracing_start(*, provider=None) -> None:
    """Instrument this process. `provider`: a TracerProvider of the caller's (tests, with an in-memory
    exporter); None builds one that exports to OTEL_EXPORTER_OTLP_ENDPOINT and makes it the global one."""
    global _tracer, _provider
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if _tracer is not None:
        return
    if provider is None:
        provider = _exporting_provider()
        trace.set_tracer_provider(provider)
    for instrumentor in (DjangoInstrumentor(), CeleryInstrumentor(), RedisInstrumentor(), PsycopgInstrumentor()):
        instrumentor.instrument(tracer_provider=provider)
        _instrumentors.append(instrumentor)
    _tracer, _provider = provider.get_tracer(__name__), provider


def tracing_flush() -> None:
    """Export the spans still waiting for their batch (a process about to leave without atexit)."""
    if _provider is not None:
        _provider.force_flush()


def tracing_stop() -> None:
    """Undo `tracing_start` (tests): the instrumented libraries are as they were."""
    global _tracer, _provider
    while _instrumentors:
        _instrumentors.pop().uninstrument()
    _tracer = _provider = None


def _exporting_provider():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or "sbm"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def carried(coroutine: Coroutine) -> Coroutine:
    """`coroutine`, to run on another thread's loop in the trace context of the caller (unchanged when off)."""
    if _tracer is None:
        return coroutine
    from opentelemetry import context

    caller = context.get_current()

    async def in_callers_context():
        token = context.attach(caller)
        try:
            return await coroutine
        finally:
            context.detach(token)

    return in_callers_context()


class _NoSpan:
    """What `client_span` gives when tracing is off: nothing to record, no header to add."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def with_headers(self, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        return headers

    def answered(self, status: int) -> None:
        return None


NO_SPAN = _NoSpan()


class _ClientSpan:
    """An outbound request's CLIENT span, ended when the request is."""

    def __init__(self, method: str, url: str):
        from opentelemetry import trace

        target = URL(url)
        self.span = _tracer.start_span(
            method,
            kind=trace.SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "url.full": str(target.with_query(None).with_fragment(None)),  # a query may carry secrets
                "server.address": target.host or "",
                "server.port": target.port or 0,
            },
        )

    def __enter__(self) -> _ClientSpan:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_attribute("error.type", kind.__name__)
            self.span.set_status(Status(StatusCode.ERROR, str(error)))
        self.span.end()

    def with_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """`headers` and the trace context (`traceparent`, `tracestate`), unless the caller gave those itself."""
        from opentelemetry import propagate, trace

        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self.span))
        given = {name.lower() for name in headers or ()}
        return {**{name: value for name, value in carrier.items() if name not in given}, **(headers or {})}

    def answered(self, status: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attribute("http.response.status_code", status)
        if status >= 400:
            self.span.set_attribute("error.type", str(status))
            self.span.set_status(Status(StatusCode.ERROR))


def client_span(method: str, url: str) -> Any:
    """A context manager for one outbound request: its span, or NO_SPAN when tracing is off."""
    return NO_SPAN if _tracer is None else _ClientSpan(method, url)
