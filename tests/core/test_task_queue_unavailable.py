"""Requests that queue a task while Celery's broker (Redis) cannot be reached: a 503, never a 500."""

import pytest
from kombu.exceptions import OperationalError as BrokerUnreachable

from contentstore.services import schedule_create
from core.exceptions import api_exception_handler
from tests.worker import unreachable_broker


def test_the_exception_handler_makes_an_unreachable_task_queue_a_503():
    response = api_exception_handler(BrokerUnreachable("refused"), {"request": None, "view": None})
    assert response.status_code == 503
    assert response.data == {"detail": "The task queue is unavailable; try again shortly."}


@pytest.mark.django_db(transaction=True)  # the task is queued when the request's writes commit
def test_an_api_call_that_queues_a_task_is_a_503_while_the_task_queue_is_unreachable(writer):
    schedule = schedule_create(minute="0", hour="8")
    with unreachable_broker():
        response = writer.post(f"/api/v1/schedule/{schedule.pk}/send/")
    assert response.status_code == 503
    assert response.json() == {"detail": "The task queue is unavailable; try again shortly."}
