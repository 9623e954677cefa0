import pytest

from accounts.scopes import Grant, ScopeError, ScopeSet, describe_missing, parse_grant


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("messaging:read", Grant("messaging", "read")),
        ("cache:readwrite", Grant("cache", "readwrite")),
        ("cache:readwrite:*", Grant("cache", "readwrite")),
        ("cache:readonly:news", Grant("cache", "readonly", cache="news")),
        ("cache:readonly:news:key_prefix=user-", Grant("cache", "readonly", cache="news", key_prefix="user-")),
        ("cache:writeonly:key=a", Grant("cache", "writeonly", key="a")),
        ("topics:subscribeonly:chat:topic=room", Grant("topics", "subscribeonly", cache="chat", topic="room")),
        ("jobs:readonly", Grant("jobs", "readonly")),
        ("tokens:mint", Grant("tokens", "mint")),
    ],
)
def test_it_reads_the_string_form(text, expected):
    assert parse_grant(text) == expected


def test_the_string_and_json_forms_round_trip():
    grant = parse_grant("cache:readonly:news:key_prefix=user-")
    assert parse_grant(grant.as_json()) == grant
    assert parse_grant(str(grant)) == grant


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("messaging", "face:role"),
        ("email:read", "Unknown face 'email'"),
        ("messaging:delete", "Unknown messaging role 'delete'"),
        ("messaging:read:news", "cannot be narrowed by cache"),
        ("cache:readonly:news:key=a:key_prefix=b", "key or key_prefix, not both"),
        ("cache:readonly:news:topic=a", "cannot be narrowed by topic"),
        ("cache:readonly:news:key", "should be name=value"),
        ({"face": "cache", "role": "readonly", "colour": "red"}, "Unknown scope field(s): colour"),
        ({"face": "cache", "role": ""}, "non-empty string"),
        (42, "must be a string"),
    ],
)
def test_it_rejects_bad_scopes_saying_why(value, message):
    with pytest.raises(ScopeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_grant(value)


def test_a_scope_list_must_be_a_list():
    with pytest.raises(ScopeError, match="must be a list"):
        ScopeSet.parse("messaging:read")


def test_roles_allow_their_actions_only():
    read, write, admin = (ScopeSet.parse([f"messaging:{role}"]) for role in ("read", "write", "admin"))
    assert read.allows("messaging", "read") and not read.allows("messaging", "write")
    assert write.allows("messaging", "write") and not write.allows("messaging", "admin")
    assert admin.allows("messaging", "admin")
    writeonly = ScopeSet.parse(["cache:writeonly"])
    assert writeonly.allows("cache", "write", cache="c", key="k")
    assert not writeonly.allows("cache", "read", cache="c", key="k")
    publish = ScopeSet.parse(["topics:publishonly:chat"])
    assert publish.allows("topics", "publish", cache="chat", topic="t")
    assert not publish.allows("topics", "subscribe", cache="chat", topic="t")


def test_cache_and_key_narrowing():
    scopes = ScopeSet.parse(["cache:readonly:news:key_prefix=user-", "cache:readwrite:news:key=shared"])
    assert scopes.allows("cache", "read", cache="news", key="user-1")
    assert scopes.allows("cache", "read", cache="news", key=b"user-\x00binary")
    assert not scopes.allows("cache", "write", cache="news", key="user-1")
    assert scopes.allows("cache", "write", cache="news", key="shared")
    assert not scopes.allows("cache", "read", cache="news", key="admin-1")
    assert not scopes.allows("cache", "read", cache="other", key="user-1")


def test_topic_narrowing():
    scopes = ScopeSet.parse(["topics:publishsubscribe:chat:topic_prefix=room-"])
    assert scopes.allows("topics", "subscribe", cache="chat", topic="room-1")
    assert not scopes.allows("topics", "subscribe", cache="chat", topic="lobby")


@pytest.mark.parametrize(
    ("held", "wanted", "covered"),
    [
        ("messaging:admin", "messaging:read", True),
        ("messaging:read", "messaging:write", False),
        ("cache:readwrite", "cache:readonly:news:key=a", True),
        ("cache:readonly:news", "cache:readwrite:news", False),
        ("cache:readwrite:news", "cache:readwrite", False),
        ("cache:readwrite:news", "cache:readwrite:other", False),
        ("cache:readwrite:news:key_prefix=user-", "cache:readonly:news:key_prefix=user-42", True),
        ("cache:readwrite:news:key_prefix=user-", "cache:readonly:news:key=user-42", True),
        ("cache:readwrite:news:key_prefix=user-", "cache:readonly:news:key_prefix=use", False),
        ("cache:readwrite:news:key_prefix=user-", "cache:readonly:news", False),
        ("cache:readwrite:news:key=a", "cache:readonly:news:key_prefix=a", False),
        ("topics:publishsubscribe:chat", "topics:subscribeonly:chat:topic=x", True),
        ("topics:publishonly:chat", "topics:subscribeonly:chat", False),
        ("jobs:readwrite", "jobs:readonly", True),
        ("jobs:readonly", "tokens:mint", False),
    ],
)
def test_covers_is_containment(held, wanted, covered):
    assert ScopeSet.parse([held]).covers(ScopeSet.parse([wanted])) is covered


def test_uncovered_lists_what_is_missing():
    held = ScopeSet.parse(["messaging:read", "cache:readonly"])
    wanted = ScopeSet.parse(["messaging:read", "cache:readwrite:news", "jobs:readonly"])
    assert [str(grant) for grant in held.uncovered(wanted)] == ["cache:readwrite:news", "jobs:readonly"]


def test_the_missing_scope_message_names_face_action_and_resource():
    message = describe_missing("cache", "write", cache="news", key=b"k\xff")
    assert message == (
        "This token does not allow cache write cache 'news' key 'k\\\\xff': "
        "it needs a cache scope with role readwrite or writeonly covering it."
    )


# --- Intersection: what a token may do within its user's grants -------------

UNIVERSE = [
    "messaging:read",
    "messaging:write",
    "messaging:admin",
    "cache:readwrite",
    "cache:readonly",
    "cache:writeonly",
    "cache:readwrite:news",
    "cache:readonly:other",
    "cache:readwrite:news:key=user-1",
    "cache:readonly:key=user-1",
    "cache:writeonly:news:key_prefix=user-",
    "cache:readwrite:key_prefix=user-1",
    "cache:readonly:news:key_prefix=admin",
    "topics:publishsubscribe",
    "topics:subscribeonly:news:topic=room-1",
    "topics:publishonly:news:topic_prefix=room-",
    "topics:publishsubscribe:other:topic_prefix=room",
    "jobs:readwrite",
    "jobs:readonly",
    "tokens:mint",
]
REQUESTS = [
    (face, action, resource)
    for face, actions in [
        ("messaging", ["read", "write", "admin"]),
        ("jobs", ["read", "write"]),
        ("tokens", ["mint"]),
    ]
    for action in actions
    for resource in [{}]
] + [
    (face, action, {"cache": cache, name: value})
    for face, name, actions in [("cache", "key", ["read", "write"]), ("topics", "topic", ["publish", "subscribe"])]
    for action in actions
    for cache in ["news", "other"]
    for value in ["user-1", "user-12", "room-1", "room-2", "admin", "x"]
]


@pytest.mark.parametrize("one", UNIVERSE)
def test_a_grants_intersection_allows_exactly_what_both_allow(one):
    mine = parse_grant(one)
    for other in map(parse_grant, UNIVERSE):
        common = mine.intersection(other)
        for face, action, resource in REQUESTS:
            both = mine.allows(face, action, **resource) and other.allows(face, action, **resource)
            assert (common is not None and common.allows(face, action, **resource)) is both, (
                mine,
                other,
                common,
                face,
                action,
                resource,
            )


@pytest.mark.parametrize(
    ("token", "user", "effective"),
    [
        (["cache:readwrite"], ["cache:readonly:news"], "cache:readonly:news"),
        (["cache:readonly:news:key=a"], ["cache:readwrite"], "cache:readonly:news:key=a"),
        (["cache:readonly"], ["cache:writeonly"], ""),
        (
            ["cache:readwrite:news:key_prefix=user-"],
            ["cache:readwrite:key_prefix=user-4"],
            "cache:readwrite:news:key_prefix=user-4",
        ),
        (["messaging:admin", "tokens:mint"], ["messaging:read"], "messaging:read"),
        (["cache:readwrite"], ["cache:readwrite", "cache:readonly:news"], "cache:readwrite:*"),
        (["topics:publishsubscribe:news"], ["topics:subscribeonly"], "topics:subscribeonly:news"),
        (["jobs:readwrite"], [], ""),
    ],
)
def test_a_scope_sets_intersection_keeps_the_shared_grants(token, user, effective):
    assert str(ScopeSet.parse(token).intersection(ScopeSet.parse(user))) == effective
