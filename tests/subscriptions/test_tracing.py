"""One trace from a schedule's fire, through the Celery tasks of its send, to the POST the message sender
receives (core/tracing.py), with a real worker and a real local sender; spans kept in memory."""

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from core import tracing
from harness.waiting import wait_until
from subscriptions import tasks

from .factories import make_messages, make_messageset, make_schedule, make_subscription

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spans():
    """Tracing on in this process (its worker thread too), the finished spans kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.tracing_start(provider=provider)
    yield exporter
    tracing.tracing_stop()


def ancestors(span, by_id: dict) -> list[str]:
    """The names of the spans above `span`, nearest first."""
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def test_a_schedule_fire_is_one_trace_down_to_the_post_to_the_message_sender(spans, sender, celery_worker):
    schedule = make_schedule(minute="0", hour="8", day_of_week="1")
    messageset = make_messageset("traced", schedule=schedule)
    make_messages(messageset, 1)
    make_subscription(messageset, schedule=schedule, identity="mother-1")

    tasks.send_schedule.delay(schedule.pk)  # what beat's periodic task of the schedule does

    wait_until(lambda: len(sender.requests()) == 1, what="the message to reach the sender", timeout=20)
    is_post = lambda span: span.kind == SpanKind.CLIENT and span.name == "POST"  # noqa: E731
    wait_until(
        lambda: "run/subscriptions.send_batch" in {span.name for span in spans.get_finished_spans()},
        what="the send task's span to end (after its POST's)",
        timeout=10,
    )

    finished = spans.get_finished_spans()
    [post] = [span for span in finished if is_post(span)]
    trace_id = post.context.trace_id
    assert post.attributes["http.response.status_code"] == 201
    assert post.attributes["url.full"] == f"{sender.url}/outbound/"
    received = sender.requests()[0].headers["traceparent"]
    assert received == f"00-{trace_id:032x}-{post.context.span_id:016x}-{post.context.trace_flags:02x}"
    assert post.context.trace_flags.sampled

    by_id = {span.context.span_id: span for span in finished if span.context.trace_id == trace_id}
    above = ancestors(post, by_id)
    assert "run/subscriptions.send_batch" in above
    assert above[-2:] == ["run/subscriptions.send_schedule", "apply_async/subscriptions.send_schedule"]
    celery_spans = {span.name for span in finished if "/subscriptions." in span.name}
    assert {span.name for span in by_id.values()} >= celery_spans  # nothing of the send in another trace


def test_off_nothing_is_traced_and_no_header_is_added(sender, celery_worker):
    assert tracing.client_span("POST", sender.url) is tracing.NO_SPAN
    schedule = make_schedule(minute="0", hour="8", day_of_week="1")
    messageset = make_messageset("untraced", schedule=schedule)
    make_messages(messageset, 1)
    make_subscription(messageset, schedule=schedule, identity="mother-1")

    tasks.send_schedule.delay(schedule.pk)

    wait_until(lambda: len(sender.requests()) == 1, what="the message to reach the sender", timeout=20)
    assert "traceparent" not in sender.requests()[0].headers
