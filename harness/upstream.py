"""An empty database shaped like a deployment of the reference stage-based messaging store.

The tables and columns of its last release, as docs/adopting.md and the import read them
(Django's default names, integer serial ids, a UUID id for subscriptions): the tests fill
one with awkward records and the benchmark with a national programme's worth.
"""

import psycopg

SCHEMA = """
CREATE TABLE auth_user (
    id serial PRIMARY KEY, password varchar(128) NOT NULL, last_login timestamptz NULL,
    is_superuser boolean NOT NULL, username varchar(150) NOT NULL UNIQUE, first_name varchar(150) NOT NULL DEFAULT '',
    last_name varchar(150) NOT NULL DEFAULT '', email varchar(254) NOT NULL DEFAULT '', is_staff boolean NOT NULL,
    is_active boolean NOT NULL, date_joined timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE authtoken_token (
    key varchar(40) PRIMARY KEY, created timestamptz NOT NULL DEFAULT now(),
    user_id integer NOT NULL UNIQUE REFERENCES auth_user (id)
);
CREATE TABLE contentstore_schedule (
    id serial PRIMARY KEY, minute varchar(64) NOT NULL DEFAULT '*', hour varchar(64) NOT NULL DEFAULT '*',
    day_of_week varchar(64) NOT NULL DEFAULT '*', day_of_month varchar(64) NOT NULL DEFAULT '*',
    month_of_year varchar(64) NOT NULL DEFAULT '*', scheduler_schedule_id uuid NULL
);
CREATE TABLE contentstore_messageset (
    id serial PRIMARY KEY, short_name varchar(100) NOT NULL UNIQUE, label varchar(100) NOT NULL DEFAULT '',
    notes text NULL, channel varchar(64) NULL,
    next_set_id integer NULL REFERENCES contentstore_messageset (id) DEFERRABLE INITIALLY DEFERRED,
    default_schedule_id integer NOT NULL REFERENCES contentstore_schedule (id),
    content_type varchar(20) NOT NULL DEFAULT 'text',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE contentstore_binarycontent (
    id serial PRIMARY KEY, content varchar(100) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE contentstore_message (
    id serial PRIMARY KEY, messageset_id integer NOT NULL REFERENCES contentstore_messageset (id),
    sequence_number integer NOT NULL, lang varchar(6) NOT NULL, text_content text NULL,
    binary_content_id integer NULL REFERENCES contentstore_binarycontent (id), metadata jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (messageset_id, sequence_number, lang)
);
CREATE TABLE subscriptions_subscription (
    id uuid PRIMARY KEY, identity varchar(36) NOT NULL, version integer NOT NULL DEFAULT 1,
    messageset_id integer NOT NULL REFERENCES contentstore_messageset (id),
    initial_sequence_number integer NOT NULL DEFAULT 1, next_sequence_number integer NOT NULL DEFAULT 1,
    lang varchar(6) NOT NULL, active boolean NOT NULL DEFAULT true, completed boolean NOT NULL DEFAULT false,
    schedule_id integer NOT NULL REFERENCES contentstore_schedule (id), process_status integer NOT NULL DEFAULT 0,
    metadata jsonb NULL, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
    created_by_id integer NULL REFERENCES auth_user (id), updated_by_id integer NULL REFERENCES auth_user (id)
);
CREATE INDEX ON subscriptions_subscription (identity);
CREATE TABLE subscriptions_subscriptionsendfailure (
    id serial PRIMARY KEY, subscription_id uuid NOT NULL REFERENCES subscriptions_subscription (id),
    task_id uuid NOT NULL, initiated_at timestamptz NOT NULL, reason text NOT NULL
);
CREATE TABLE subscriptions_estimatedsend (
    id serial PRIMARY KEY, send_date date NOT NULL,
    messageset_id integer NOT NULL REFERENCES contentstore_messageset (id),
    estimate_subscriptions integer NOT NULL, estimate_identities integer NOT NULL, UNIQUE (send_date, messageset_id)
);
CREATE TABLE subscriptions_resendrequest (
    id serial PRIMARY KEY, received_at timestamptz NOT NULL DEFAULT now(),
    subscription_id uuid NOT NULL REFERENCES subscriptions_subscription (id), outbound uuid NULL,
    message_id integer NULL REFERENCES contentstore_message (id)
);
CREATE TABLE subscriptions_behindsubscription (
    id serial PRIMARY KEY, subscription_id uuid NOT NULL REFERENCES subscriptions_subscription (id),
    messages_behind integer NOT NULL,
    current_messageset_id integer NOT NULL REFERENCES contentstore_messageset (id),
    current_sequence_number integer NOT NULL,
    expected_messageset_id integer NOT NULL REFERENCES contentstore_messageset (id),
    expected_sequence_number integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
);
"""


def create_upstream_database(name: str, server: str = "postgresql://postgres@127.0.0.1:5432") -> str:
    """A new, empty upstream-shaped database `name` (dropped first if it exists); its URL."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    url = f"{server}/{name}"
    with psycopg.connect(url) as connection:
        connection.execute(SCHEMA)
    return url
