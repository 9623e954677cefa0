"""What a subscriber gets: the messages after its position, and discontinuities
when it missed some, the topic's numbering restarted, or it fell too far behind."""

import json
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from django.conf import settings

from .feed import TopicFeed
from .store import Message, TopicRef, topic_read, topic_state


class Cursor(NamedTuple):  # a tuple: one is made per subscriber per wake
    """A subscriber's position: the next sequence number it wants, in `page` (0: any).
    `live` once it has caught up with its feed: from then on, it is kept within
    TOPICS_SUBSCRIBER_MAX_LAG messages of the newest (a replay before that is served whole)."""

    page: int
    seq: int
    live: bool = False


@dataclass(frozen=True)
class Discontinuity:
    """The subscriber's next message is `new`, not `last` + 1 (in `page`)."""

    last: int
    new: int
    page: int

    def as_json(self) -> dict:
        return {
            "discontinuity": {"last_topic_sequence": self.last, "new_topic_sequence": self.new,
                              "new_sequence_page": self.page}
        }  # fmt: skip

    @cached_property
    def item_json(self) -> bytes:
        return json.dumps(self.as_json()).encode()

    @cached_property
    def sse_frame(self) -> bytes:
        return b"event: discontinuity\ndata: %s\n\n" % json.dumps(self.as_json()["discontinuity"]).encode()


Entry = Message | Discontinuity


async def cursor_start(topic: TopicRef, *, sequence_number: int, sequence_page: int) -> Cursor:
    """Where a subscription starts: `sequence_number` 0 means after the last message now."""
    if sequence_number == 0:
        state = await topic_state(topic)
        return Cursor(page=state.page or 0, seq=state.last_seq + 1)
    return Cursor(page=sequence_page, seq=sequence_number)


def max_lag() -> int:
    """How far behind its feed's newest message a live subscriber may be before it is skipped ahead."""
    return min(settings.TOPICS_SUBSCRIBER_MAX_LAG, settings.TOPICS_FEED_BUFFER)


def delivered(entries: list[Entry]) -> int:
    """How many of `entries` are messages (discontinuities come first, before the messages)."""
    skip = 0
    while skip < len(entries) and type(entries[skip]) is Discontinuity:
        skip += 1
    return len(entries) - skip


async def collect(
    topic: TopicRef, feed: TopicFeed, cursor: Cursor, limit: int, lag: int | None = None
) -> tuple[list[Entry], Cursor]:
    """What the subscriber at `cursor` gets now (maybe nothing), and its cursor after that.
    `lag`: max_lag(), when the caller keeps it (the list may be shared: it is not to be changed)."""
    lag = max_lag() if lag is None else lag
    if feed.covers(cursor.page, cursor.seq):
        page = cursor.page if feed.page is None else feed.page
        seq = cursor.seq
        if cursor.live and feed.next_seq - seq > lag:
            # Too slow to keep up (its socket not read, its process saturated): on to the newest message,
            # told with a discontinuity, rather than buffering more for it or holding anything back.
            gap = Discontinuity(seq - 1, feed.next_seq - 1, page)
            messages = feed.messages_from(gap.new, limit)
            return [gap, *messages], Cursor(page, feed.next_seq, live=True)
        messages = feed.messages_from(seq, limit)
        seq = messages[-1].seq + 1 if messages else seq
        return messages, Cursor(page, seq, live=cursor.live or seq == feed.next_seq)

    state = await topic_state(topic)
    if state.page is None:
        return [], cursor
    page, seq, out = state.page, cursor.seq, []
    if cursor.page not in (0, page) or seq < state.first_seq:  # numbering restarted, or out of the window
        out.append(Discontinuity(seq - 1, state.first_seq, page))
        seq = state.first_seq
    elif seq > state.last_seq + 1:  # ahead of the topic: its numbering was reset under the same page
        out.append(Discontinuity(seq - 1, state.last_seq + 1, page))
        seq = state.last_seq + 1
    elif cursor.live and state.last_seq + 1 - seq > lag:  # fell behind past its feed's ring
        out.append(Discontinuity(seq - 1, state.last_seq, page))
        seq = state.last_seq
    messages = await topic_read(topic, page=page, from_seq=seq, count=limit) if seq <= state.last_seq else []
    if messages and messages[0].seq != seq:  # trimmed between the two reads
        out.append(Discontinuity(seq - 1, messages[0].seq, page))
    out.extend(messages)
    return out, Cursor(page, messages[-1].seq + 1 if messages else seq, live=cursor.live)
