"""A Celery worker's garbage collector: sized past the deliveries it holds in flight, before its pool forks."""

import gc

import pytest

from config.celery import settle_worker_garbage_collector
from core.startup import WORKER_YOUNG_GENERATION_THRESHOLD


@pytest.fixture
def thresholds():
    """The collector's thresholds as they were, back after the test."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_a_worker_starting_sizes_the_young_generation_past_its_deliveries_in_flight(thresholds):
    assert gc.get_threshold()[0] == 700  # Python's own, which hundreds of deliveries in flight pass all the time
    settle_worker_garbage_collector()  # connected to worker_init: before the pool forks
    assert gc.get_threshold() == (WORKER_YOUNG_GENERATION_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0  # what start-up loaded is out of the collector's passes
