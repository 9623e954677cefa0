"""`__any_of`: one array parameter on PostgreSQL, the rows `__in` gives."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job

from ..jobs.helpers import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(django_user_model):
    user = django_user_model.objects.create_user(username="owner@example.org", email="owner@example.org")
    return [make_job(user, f"https://example.org/{n}") for n in range(5)]


def test_any_of_finds_the_rows_in_finds_given_ids_or_their_text(jobs):
    wanted = [jobs[0].pk, jobs[3].pk, uuid.uuid4()]
    by_in = set(Job.objects.filter(pk__in=wanted).values_list("pk", flat=True))

    assert set(Job.objects.filter(pk__any_of=wanted).values_list("pk", flat=True)) == by_in == {jobs[0].pk, jobs[3].pk}
    assert set(Job.objects.filter(pk__any_of=[str(pk) for pk in wanted]).values_list("pk", flat=True)) == by_in
    assert not Job.objects.filter(pk__any_of=[]).exists()
    assert Job.objects.filter(pk__any_of=wanted[:2]).update(body="changed") == 2


def test_any_of_binds_the_ids_as_one_array_parameter(jobs):
    with CaptureQueriesContext(connection) as queries:
        list(Job.objects.filter(pk__any_of=[job.pk for job in jobs]))
    assert " = ANY(" in queries[0]["sql"]
    assert queries[0]["sql"].count(jobs[0].pk.hex) == 1  # the array literal, once
