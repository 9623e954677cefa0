import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from core.services import model_set_and_validate, model_settable_fields

pytestmark = pytest.mark.django_db  # the uniqueness checks ask the database


def test_it_sets_the_fields_and_saves_nothing():
    group = model_set_and_validate(Group(), {"name": "editors"})
    assert (group.name, group.pk) == ("editors", None)


def test_a_value_the_model_refuses_is_an_error_of_its_field():
    with pytest.raises(ValidationError) as raised:
        model_set_and_validate(Group(), {"name": "x" * 151})
    assert list(raised.value.message_dict) == ["name"]


@pytest.mark.parametrize("name", ["colour", "id", "name"])
def test_it_refuses_names_that_are_not_fields_the_caller_may_set(name):
    with pytest.raises(TypeError, match=f"Not field\\(s\\) a service sets on Group: {name}"):
        model_set_and_validate(Group(), {name: "x"}, fixed=["name"])


def test_settable_fields_leave_out_the_primary_key_and_the_fixed_ones():
    assert model_settable_fields(Group) == {"name"}
    assert model_settable_fields(Group, fixed=["name"]) == set()


def test_uniqueness_is_checked_unless_the_caller_checks_it_itself():
    Group.objects.create(name="editors")
    with pytest.raises(ValidationError) as raised:
        model_set_and_validate(Group(), {"name": "editors"})
    assert list(raised.value.message_dict) == ["name"]
    assert model_set_and_validate(Group(), {"name": "editors"}, unique=False).name == "editors"
