"""What a subscriber gets: the messages after its position, and discontinuities
when it missed some or the topic's numbering restarted."""

import asyncio
from dataclasses import dataclass

from .feed import TopicFeed
from .store import Message, TopicRef, topic_read, topic_state


@dataclass(frozen=True)
class Cursor:
    """A subscriber's position: the next sequence number it wants, in `page` (0: any)."""

    page: int
    seq: int


def discontinuity(last: int, new: int, page: int) -> dict:
    return {"discontinuity": {"last_topic_sequence": last, "new_topic_sequence": new, "new_sequence_page": page}}


def item(message: Message) -> dict:
    return {"item": message.as_json()}


async def cursor_start(topic: TopicRef, *, sequence_number: int, sequence_page: int) -> Cursor:
    """Where a subscription starts: `sequence_number` 0 means after the last message now."""
    if sequence_number == 0:
        state = await topic_state(topic)
        return Cursor(page=state.page or 0, seq=state.last_seq + 1)
    return Cursor(page=sequence_page, seq=sequence_number)


async def collect(topic: TopicRef, feed: TopicFeed, cursor: Cursor, limit: int) -> tuple[list[dict], Cursor]:
    """What the subscriber at `cursor` gets now (maybe nothing), and its cursor after that."""
    if feed.covers(cursor.page, cursor.seq):
        messages = feed.messages_from(cursor.seq, limit)
        page = cursor.page if feed.page is None else feed.page
        return [item(m) for m in messages], Cursor(page, messages[-1].seq + 1 if messages else cursor.seq)

    state = await topic_state(topic)
    if state.page is None:
        return [], cursor
    page, seq, out = state.page, cursor.seq, []
    if cursor.page not in (0, page) or seq < state.first_seq:  # numbering restarted, or out of the window
        out.append(discontinuity(seq - 1, state.first_seq, page))
        seq = state.first_seq
    elif seq > state.last_seq + 1:  # ahead of the topic: its numbering was reset under the same page
        out.append(discontinuity(seq - 1, state.last_seq + 1, page))
        seq = state.last_seq + 1
    messages = await topic_read(topic, page=page, from_seq=seq, count=limit) if seq <= state.last_seq else []
    if messages and messages[0].seq != seq:  # trimmed between the two reads
        out.append(discontinuity(seq - 1, messages[0].seq, page))
    out.extend(item(m) for m in messages)
    return out, Cursor(page, messages[-1].seq + 1 if messages else seq)


async def wait_for(waiter: asyncio.Event, timeout: float) -> bool:
    """Wait until `waiter` is set or `timeout` passes; whether it was set."""
    try:
        async with asyncio.timeout(max(timeout, 0)):
            await waiter.wait()
    except TimeoutError:
        pass
    return waiter.is_set()
