"""The harness's own promises: a stopped process takes its children with it, waits are bounded,
the recording peer fails the first attempts of a key as told, and a shared local server is reset
only once it has answered every request it received."""

import re
import threading
from pathlib import Path

import httpx
import pytest
from werkzeug import Response

from harness.peer import RecordingPeer, local_server
from harness.processes import Process
from harness.waiting import poll, wait_until


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its parent counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    "end",
    [pytest.param(lambda process: process.stop(grace=0.5), id="stop"), pytest.param(Process.kill, id="kill")],
)
def test_stopping_a_process_stops_its_children_too(tmp_path, end):
    # The shell and its child ignore SIGTERM: only the SIGKILL to the group, after the grace, ends them.
    script = "trap '' TERM; sleep 300 & echo child=$!; wait"
    process = Process("parent", ["bash", "-c", script], log=tmp_path / "parent.log").start()
    found = wait_until(lambda: re.search(r"child=(\d+)", process.output()), what="the child's pid", timeout=10)
    child = int(found.group(1))
    assert _running(child)

    end(process)

    assert not process.alive
    assert poll(lambda: not _running(child), timeout=10), "the child outlived its parent's stop"


def test_a_wait_that_never_comes_names_what_it_waited_for():
    with pytest.raises(TimeoutError, match=r"Gave up waiting for the moon after 0\.1 s"):
        wait_until(lambda: False, what="the moon", timeout=0.1, every=0.02)


def test_the_peer_fails_the_first_attempts_of_each_key_then_answers():
    peer = RecordingPeer(status=202).start()
    try:
        peer.behave("/outbound/", fail_first=1)
        with httpx.Client(base_url=peer.url) as client:
            answers = [client.post("/outbound/", headers={"Idempotency-Key": key}).status_code for key in "aab"]
            other = client.get("/elsewhere").status_code
        assert answers == [503, 201, 503]
        assert other == 202
        assert peer.keys("/outbound/") == {"a": 2, "b": 1}
        assert [request.method for request in peer.received()] == ["POST", "POST", "POST", "GET"]
    finally:
        peer.stop()


def test_a_reset_waits_for_the_answer_to_a_request_its_client_gave_up_on_so_it_is_not_logged_after():
    arrived, let_go = threading.Event(), threading.Event()

    def late(request):
        arrived.set()
        let_go.wait(10)
        return Response("late")

    with local_server() as server:
        server.expect_request("/late").respond_with_handler(late)
        with pytest.raises(httpx.TimeoutException):
            httpx.get(server.url_for("/late"), timeout=0.2)
        assert arrived.is_set()
        assert server.answering() == {"/late": 1}
        with pytest.raises(TimeoutError, match=re.escape("still answering {'/late': 1} after 0.1 s")):
            server.wait_idle(timeout=0.1)

        reset = threading.Thread(target=server.reset)
        reset.start()
        reset.join(0.2)
        assert reset.is_alive()  # still waiting for the answer
        let_go.set()
        reset.join(10)
        assert not reset.is_alive()

        assert server.answering() == {}
        server.expect_request("/after").respond_with_data("ok")
        assert httpx.get(server.url_for("/after"), timeout=5).text == "ok"
        assert [request.path for request, _ in server.log] == ["/after"]
