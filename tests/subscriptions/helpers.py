"""Assertions the subscription tests share."""

from .factories import fresh


def assert_waits_for(subscription, sequence_number: int) -> None:
    """`subscription` (read again) is in progress and its next message is `sequence_number`."""
    current = fresh(subscription)
    assert (current.next_sequence_number, current.process_status) == (sequence_number, 0)
