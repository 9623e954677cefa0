"""Assertions the content API tests share."""


def assert_delete_refused(response, *, what: str, pk: int, users: str) -> None:
    """`response` refuses to delete `what` `pk` because `users` use it (e.g. "1 message set (baby-eng)")."""
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": [f"Cannot delete {what} {pk}: it is used by {users}. Change or delete those first."]
    }
