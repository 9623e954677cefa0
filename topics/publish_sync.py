"""Publishing to a topic from synchronous code (a Celery task): the service's own messages.

The same append as `store.topic_publish` (its APPEND script, on the client that holds
topic keys, a Redis Cluster's when DATA_REDIS_CLUSTER_NODES is set), for many text
messages in one pipelined round trip. Not counted against any user's rate limits:
these are the service's messages, not a token's requests.
"""

import time

from django.conf import settings
from redis.exceptions import NoScriptError

from core.redis import get_data_redis

from .store import APPEND_SCRIPT, TopicRef


def topic_publish_texts(*, topic: TopicRef, texts: list[str]) -> list[tuple[int, int]]:
    """Append each text in order; their (page, sequence number)s. Redis errors are raised."""
    keys = [topic.key, topic.meta_key]
    limits = [settings.TOPICS_REPLAY_LENGTH, settings.TOPICS_REPLAY_SECONDS * 1000]
    calls = [[*keys, "t", text.encode(), int(time.time() * 1000), *limits] for text in texts]
    client = get_data_redis()
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.evalsha(APPEND_SCRIPT.sha, len(keys), *call)
    results = pipe.execute(raise_on_error=False)
    answers = []
    for call, result in zip(calls, results, strict=True):
        if isinstance(result, NoScriptError):  # Redis restarted since the script was loaded
            result = APPEND_SCRIPT.run_sync(client, call[: len(keys)], call[len(keys) :])
        elif isinstance(result, Exception):
            raise result
        answers.append((int(result[1]), int(result[2])))
    return answers
