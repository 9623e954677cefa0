"""Signatures on every job request and callback: Standard Webhooks, with a secret per owner.

    webhook-id: 3b9d5d4e-6f9c-4f1e-9a5a-3d1c2b0a9e77_5b1c...e0   (the delivery id _ the target)
    webhook-timestamp: 1767225600
    webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=

Each `v1` is the base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"` under one of the
job owner's secrets (`whsec_<base64>`), so a receiver verifies with a `standardwebhooks`
library. The id binds the delivery to where it was meant to go: its second part is the
hex SHA-256 of `"{method}\\n{uri}\\n{Job-Id}"` (Job-Id empty for a request), so a
signature made for one destination, job or owner proves nothing anywhere else.

Secrets are kept encrypted with a key derived from JOBS_SIGNING_KEY (and, while the
operator rotates that key, JOBS_SIGNING_NEXT_KEY), shown to their owner once, and
rotated with an overlap in which both the old and the new secret sign. An owner with no
secret gets one the first time one of their jobs is sent, or when they ask for it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, models, transaction

from core.startup import HOW_TO_SET

from . import clock
from .headers import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)
from .models import Job, SigningSecret

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


class SecretAlreadyShown(Exception):
    """The current secret was shown once; only a rotation gives one to see."""


class SecretUnreadable(Exception):
    """A stored secret does not decrypt with the configured keys."""


# --- Signing ---------------------------------------------------------------


def target_digest(method: str, uri: str, job_id: str = "") -> str:
    """What the id binds a delivery to: the method, the job's `uri` and, for a callback, its Job-Id."""
    return hashlib.sha256(f"{method}\n{uri}\n{job_id}".encode()).hexdigest()


def delivery_id(job: Job) -> str:
    """The webhook-id: the same on every attempt of the job, different for every destination."""
    job_id = str(job.parent_id) if job.parent_id is not None else ""
    return f"{job.delivery_id}_{target_digest(job.method, job.uri, job_id)}"


def signatures(keys: Iterable[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: one `v1,<base64>` per key, space-separated."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def delivery_headers(job: Job, body: bytes, *, timestamp: int) -> dict[str, str]:
    """The signature headers of one attempt of `job`, with its owner's keys (see `signing_keys_attach`)."""
    keys = getattr(job, "signing_keys", None)
    if keys is None:
        raise RuntimeError(f"Job {job.pk} has no signing keys attached: call signing_keys_attach first.")
    if isinstance(keys, Exception):
        raise keys
    webhook_id = delivery_id(job)
    return {
        ID_HEADER: webhook_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signatures(keys, webhook_id, timestamp, body),
    }


def signing_keys_attach(jobs: list[Job]) -> None:
    """Give each job its keyring's valid keys (current first) as `job.signing_keys`, before the jobs
    are sent from other threads: one query, plus a new secret for a keyring that has none
    (the owner's own keyring unless the job names another).

    An owner whose secrets do not decrypt gets the error instead: their jobs' attempts fail
    with it, the others are sent.
    """
    valid_secrets_read(jobs, now=clock.now())
    signing_keys_attach_read(jobs)


def valid_secrets_read(jobs: list[Job], *, now: datetime) -> None:
    """Give each job its keyring's secrets valid at `now` as `job.valid_secrets`: [encrypted, fingerprint]
    pairs, current first (as `valid_secrets` orders them); one query."""
    rings = {(job.user_id, job.keyring) for job in jobs}
    by_ring: dict[tuple[int, str], list[list[str]]] = {ring: [] for ring in rings}
    owned = SigningSecret.objects.filter(
        user_id__in={owner for owner, _ in rings}, keyring__in={keyring for _, keyring in rings}
    )
    for owner, keyring, encrypted, fingerprint_ in valid_secrets(owned, now=now).values_list(
        "user_id", "keyring", "encrypted", "fingerprint"
    ):
        if (owner, keyring) in by_ring:
            by_ring[owner, keyring].append([encrypted, fingerprint_])
    for job in jobs:
        job.valid_secrets = by_ring[job.user_id, job.keyring]


# A job's keyring's secrets valid at %(now)s, as `valid_secrets_read` gives them, for a statement that reads the
# jobs of `jobs_job AS job`: so that the jobs it answers need no query of their own to be signed.
VALID_SECRETS_READ = """ARRAY(
    SELECT ARRAY[secret.encrypted, secret.fingerprint] FROM jobs_signingsecret AS secret
    WHERE secret.user_id = job.user_id AND secret.keyring = job.keyring
        AND (secret.expires_at IS NULL OR secret.expires_at > %(now)s)
    ORDER BY secret.expires_at DESC NULLS FIRST, secret.id DESC
)"""


def signing_keys_attach_read(jobs: list[Job]) -> None:
    """`signing_keys_attach` for jobs whose keyrings' valid secrets were read (`job.valid_secrets`, see
    `valid_secrets_read`): no query, but to make a secret for a keyring that has none."""
    by_ring: dict[tuple[int, str], list[SigningSecret]] = {}
    for job in jobs:
        ring = (job.user_id, job.keyring)
        if ring not in by_ring:
            by_ring[ring] = [
                SigningSecret(user_id=job.user_id, keyring=job.keyring, encrypted=encrypted, fingerprint=fingerprint_)
                for encrypted, fingerprint_ in job.valid_secrets
            ]
    keys: dict[tuple[int, str], list[bytes] | Exception] = {}
    for (owner, keyring), valid in by_ring.items():
        try:
            current = valid or [current_secret(user_id=owner, keyring=keyring)]
            keys[owner, keyring] = [_key(decrypt(secret)) for secret in current]
        except (SecretUnreadable, ImproperlyConfigured) as error:
            keys[owner, keyring] = error
    for job in jobs:
        job.signing_keys = keys[job.user_id, job.keyring]


def valid_secrets(queryset: models.QuerySet, *, now: datetime) -> models.QuerySet:
    """The secrets that sign at `now`: the current one first, then those in their overlap."""
    return queryset.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)).order_by(
        models.F("expires_at").desc(nulls_first=True), "-id"
    )


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


# --- Secrets at rest -------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _fernet_key(key: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"jobs: owners' signing secrets").derive(
        key.encode()
    )
    return base64.urlsafe_b64encode(derived)


def _cipher() -> MultiFernet:
    """Encrypts with JOBS_SIGNING_NEXT_KEY while it is set (it is about to become the key), else
    JOBS_SIGNING_KEY; decrypts with either."""
    if not settings.JOBS_SIGNING_KEY:
        raise ImproperlyConfigured(HOW_TO_SET["JOBS_SIGNING_KEY"])
    keys = [key for key in (settings.JOBS_SIGNING_NEXT_KEY, settings.JOBS_SIGNING_KEY) if key]
    return MultiFernet([Fernet(_fernet_key(key)) for key in keys])


@functools.lru_cache(maxsize=1024)
def _decrypted(encrypted: str, keys: tuple[str | None, str | None]) -> str:
    """The secret in `encrypted` (read once a process for each secret and pair of keys: a key's change is seen)."""
    return _cipher().decrypt(encrypted.encode()).decode()


def decrypt(secret: SigningSecret) -> str:
    try:
        return _decrypted(secret.encrypted, (settings.JOBS_SIGNING_KEY, settings.JOBS_SIGNING_NEXT_KEY))
    except InvalidToken:
        raise SecretUnreadable(
            f"The job signing secret {secret.fingerprint} of user {secret.user_id} does not decrypt with "
            "JOBS_SIGNING_KEY or JOBS_SIGNING_NEXT_KEY (was the key changed without a rotation?)."
        ) from None


def fingerprint(secret: str) -> str:
    """The first 12 hex digits of the secret's SHA-256: tells secrets apart, gives nothing away."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _new_secret(*, user_id: int, keyring: str, now: datetime, shown: bool) -> tuple[SigningSecret, str]:
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
    record = SigningSecret.objects.create(
        user_id=user_id,
        keyring=keyring,
        encrypted=_cipher().encrypt(secret.encode()).decode(),
        fingerprint=fingerprint(secret),
        created_at=now,
        shown_at=now if shown else None,
    )
    return record, secret


def signing_secrets_reencrypt() -> int:
    """Encrypt every stored secret again with the current key (to finish a key rotation); how many."""
    cipher = _cipher()
    count = 0
    for secret in SigningSecret.objects.only("pk", "encrypted").iterator():
        SigningSecret.objects.filter(pk=secret.pk, encrypted=secret.encrypted).update(
            encrypted=cipher.rotate(secret.encrypted.encode()).decode()
        )
        count += 1
    return count


# --- The owner's secret ----------------------------------------------------


def current_secret(*, user_id: int, keyring: str = "") -> SigningSecret:
    """The keyring's current secret (the owner's own by default), made (not yet shown) if it has none."""
    current = SigningSecret.objects.filter(user_id=user_id, keyring=keyring, expires_at__isnull=True).first()
    if current is not None:
        return current
    try:
        with transaction.atomic():
            return _new_secret(user_id=user_id, keyring=keyring, now=clock.now(), shown=False)[0]
    except IntegrityError:  # made meanwhile by another process
        return SigningSecret.objects.get(user_id=user_id, keyring=keyring, expires_at__isnull=True)


def signing_secret_reveal(*, user) -> tuple[SigningSecret, str]:
    """The owner's current secret and its value, once (made now if they have none).

    Raises SecretAlreadyShown when it was shown before: rotate to get a new one.
    """
    current = current_secret(user_id=user.pk)
    now = clock.now()
    if not SigningSecret.objects.filter(pk=current.pk, shown_at__isnull=True).update(shown_at=now):
        raise SecretAlreadyShown(f"The signing secret {current.fingerprint} was shown already.")
    current.shown_at = now
    return current, decrypt(current)


@transaction.atomic
def signing_secret_rotate(*, user, overlap: int, keyring: str = "") -> tuple[SigningSecret, str]:
    """A new current secret of the keyring (returned with its value, shown now); the previous one
    signs too for `overlap` more seconds. Older secrets stop signing at once: at most two are ever valid."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()  # one rotation at a time
    now = clock.now()
    owned = SigningSecret.objects.filter(user=user, keyring=keyring)
    owned.filter(expires_at__isnull=False).delete()
    if overlap > 0:
        owned.filter(expires_at__isnull=True).update(expires_at=now + timedelta(seconds=overlap))
    else:
        owned.filter(expires_at__isnull=True).delete()
    return _new_secret(user_id=user.pk, keyring=keyring, now=now, shown=True)


def signing_keyring_delete(*, user_id: int, keyring: str) -> None:
    """Forget a keyring's secrets (the thing it signed for is gone)."""
    SigningSecret.objects.filter(user_id=user_id, keyring=keyring).exclude(keyring="").delete()


def signing_secrets_of(*, user) -> list[SigningSecret]:
    """The owner's own secrets that sign now, the current one first."""
    return list(valid_secrets(SigningSecret.objects.filter(user=user, keyring=""), now=clock.now()))
