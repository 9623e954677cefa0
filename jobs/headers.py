"""The headers the service sets on every job request, and those a job may therefore not set itself."""

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
DELIVERY_HEADER = "Job-Delivery-Id"
ATTEMPT_HEADER = "Job-Attempt"
JOB_HEADER = "Job-Id"
# Where signatures under one key for the whole service used to travel; refused, so nothing looks signed that way.
RETIRED_SIGNATURE_HEADER = "Job-Signature"
# Headers a job may not set itself: ours and those the HTTP client manages.
RESERVED_HEADERS = frozenset(
    {
        ID_HEADER,
        TIMESTAMP_HEADER,
        SIGNATURE_HEADER,
        RETIRED_SIGNATURE_HEADER.lower(),
        DELIVERY_HEADER.lower(),
        ATTEMPT_HEADER.lower(),
        JOB_HEADER.lower(),
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "expect",
    }
)
