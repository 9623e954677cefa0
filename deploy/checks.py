# ruff: noqa: S603 - runs the service's own commands
"""The checks of the production topology, each run through nginx as a client would.

`Checks.run` runs them in order against a started `Topology`; each returns what it
saw, or raises (`expect` fails it with a reason). `Report` prints each result as it
comes and keeps the lines for deploy/results/.
"""

import json
import secrets
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import redis
from layout import DATABASE, LONG_POLL_SECONDS, POSTGRES, PYTHON, REDIS_URL, ROOT, WEB_PROCESSES, WORKERS
from standardwebhooks import Webhook

from harness.waiting import poll

CACHE_MAX_ITEM_BYTES = 5 * 1024 * 1024


class CheckFailed(Exception):
    pass


def expect(condition: object, message: object) -> None:
    """Fail the check in progress, saying `message`, unless `condition` holds."""
    if not condition:
        raise CheckFailed(str(message))


class Report:
    """Prints each line as it comes and keeps it for deploy/results/."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.results: list[tuple[str, bool, str]] = []

    def say(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def check(self, name: str, run: Callable[[], str]) -> bool:
        started = time.monotonic()
        try:
            detail, ok = run(), True
        except Exception as error:  # a check that raises is a failed check, with its reason
            detail, ok = f"{type(error).__name__}: {error}", False
            if not isinstance(error, CheckFailed | httpx.HTTPError | TimeoutError):
                self.lines.append(traceback.format_exc())
        self.results.append((name, ok, detail))
        self.say(f"{'PASS' if ok else 'FAIL'}  {name} ({time.monotonic() - started:.1f} s): {detail}")
        return ok

    def write(self, name: str) -> None:
        """Keep every line in deploy/results/<name>-<date>-<time>.md."""
        results = ROOT / "deploy" / "results"
        results.mkdir(exist_ok=True)
        path = results / f"{name}-{datetime.now(UTC):%Y%m%d-%H%M}.md"
        path.write_text("\n".join(["```", *self.lines, "```", ""]))
        print(f"Written to {path.relative_to(ROOT)}")


SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        expect(response.headers.get(name) == value, f"{name}: {response.headers.get(name)!r}")


class Checks:
    def __init__(self, topology, report: Report) -> None:
        self.topology = topology
        self.report = report
        self.http = topology.client()
        self.token = ""
        self.auth: dict[str, str] = {}

    def run(self) -> None:
        check = self.report.check
        check("check --deploy with the production settings", self.check_deploy)
        check("health through the proxy, over HTTPS, with the security headers", self.health)
        self.token = self.topology.manage("createtoken", "ops@example.org", "--superuser").strip().splitlines()[-1]
        self.auth = {"Authorization": f"Token {self.token}"}
        check("a cache for the cache and topics checks, created through the REST API", self.cache_create)
        check("plain HTTP is redirected to HTTPS", self.redirect)
        check(f"{WORKERS} Celery workers answer a ping", self.workers)
        idle_poll = BackgroundCall(self.idle_long_poll)  # runs while the other checks do
        check("schedule fire: POST schedule/{id}/send/ reaches the message sender", self.schedule_fire)
        check("cache round trip (1 MiB item) through the proxy", self.cache_round_trip)
        check("cache item over CACHE_MAX_ITEM_BYTES: the service's 400, not nginx's 413", self.cache_too_large)
        check("topic subscribe as SSE: the event arrives while the stream is open", self.topic_sse)
        check("topic long poll answers as soon as a message is published", self.topic_long_poll)
        check("delayed job calls its local target, then its callback", self.delayed_job)
        check("binary content upload, its file served by nginx from MEDIA_ROOT", self.media)
        check("the scheduler fires the schedule by itself at its next minute", self.scheduler_fires)
        check(
            f"idle long poll ends with {{'items': []}} after {LONG_POLL_SECONDS} s, not a proxy timeout",
            idle_poll.result,
        )
        check(f"requests reached all {WEB_PROCESSES} web processes", self.both_web_processes)
        check("no token in nginx's access log (query strings are not logged)", self.no_token_logged)
        self.report.say()
        self.report.say(self.connections())

    # Each check returns what it saw, or raises.

    def check_deploy(self) -> str:
        output = self.topology.manage("check", "--deploy", "--fail-level", "WARNING")
        return output.strip()

    def health(self) -> str:
        response = self.http.get("/api/health/")
        expect(response.status_code == 200, response.text)
        expect(response.json()["up"] is True, response.text)
        assert_security_headers(response)
        return f"200 {response.json()['result']}; HSTS, nosniff, Referrer-Policy, X-Frame-Options present"

    def redirect(self) -> str:
        url = f"http://127.0.0.1:{self.topology.http_port}/api/v1/schedule/?page_size=1"
        response = httpx.get(url, headers=self.auth, timeout=10)
        expect(response.status_code == 301, response.status_code)
        location = response.headers["location"]
        expect(location == f"{self.topology.base}/api/v1/schedule/?page_size=1", location)
        return f"301 -> {location}"

    def workers(self) -> str:
        done = subprocess.run(
            [PYTHON, "-m", "celery", "-A", "config", "inspect", "ping", "--timeout", "5", "--json"],
            cwd=ROOT, env=self.topology.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        answers = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        names = sorted(answers)
        expect(len(names) == WORKERS, f"answers: {names} {done.stderr[-500:]}")
        return ", ".join(names)

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = self.http.request(method, f"/api/v1/{path}", headers=self.auth, **kwargs)
        expect(response.status_code in (200, 201, 202), f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def schedule_fire(self) -> str:
        # Far enough from the minute's end that this fire counts for this minute's period
        # (a fire up to 5 s before a run time counts for that run time).
        if datetime.now(UTC).second >= 50:
            time.sleep(61 - datetime.now(UTC).second)
        schedule = self.api("POST", "schedule/", json={"minute": "*", "hour": "*"})
        messageset = self.api(
            "POST",
            "messageset/",
            json={"short_name": "topology", "label": "Topology", "default_schedule": schedule["id"], "channel": "sms"},
        )
        for number in (1, 2):
            self.api(
                "POST",
                "message/",
                json={
                    "messageset": messageset["id"],
                    "sequence_number": number,
                    "lang": "eng",
                    "text_content": f"Message {number} of the topology run",
                },
            )
        self.identity = str(uuid.uuid4())
        self.subscription = self.api(
            "POST",
            "subscriptions/",
            json={"identity": self.identity, "messageset": messageset["id"], "lang": "eng", "schedule": schedule["id"]},
        )
        self.schedule_id = schedule["id"]
        fired = time.time()
        answer = self.api("POST", f"schedule/{schedule['id']}/send/")
        expect(answer == {"accepted": True}, answer)
        got = self.topology.sender.wait_for(lambda r: b"Message 1 " in r.body, timeout=30)
        payload = json.loads(got.body)
        expect(got.path == "/outbound/", got.path)
        expect(payload["to_identity"] == self.identity, payload)
        expect(
            got.headers.get("authorization") == "Token topology-sender-token",
            f"Authorization: {got.headers.get('authorization')!r}",
        )
        key = got.headers["idempotency-key"]
        expect(key == f"{self.subscription['id']}:1", key)
        return f"POST /outbound/ {payload['content']!r}, Idempotency-Key {key}, {got.at - fired:.2f} s after the fire"

    def scheduler_fires(self) -> str:
        deadline = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        got = self.topology.sender.wait_for(
            lambda r: b"Message 2 " in r.body, timeout=max((deadline - datetime.now(UTC)).total_seconds(), 1)
        )
        fired_at = datetime.fromtimestamp(got.at, UTC)
        keys = [r.headers["idempotency-key"] for r in self.topology.sender.received()]
        expect(sorted(keys) == sorted(set(keys)), f"a key arrived twice: {keys}")
        subscription = self.api("GET", f"subscriptions/{self.subscription['id']}/")
        expect(subscription["completed"] is True, subscription)
        return (
            f"message 2 at {fired_at:%H:%M:%S.%f}"[:-3]
            + f" UTC ({fired_at.second + fired_at.microsecond / 1e6:.1f} s past the minute); "
            f"each Idempotency-Key once ({', '.join(sorted(keys))}); the subscription completed"
        )

    def cache_create(self) -> str:
        response = self.http.put("/api/v1/caches/topology", headers=self.auth)
        expect(response.status_code == 201, response.text)
        return f"PUT /api/v1/caches/topology: 201 {response.json()}"

    def cache_round_trip(self) -> str:
        value = secrets.token_bytes(1024 * 1024)
        stored = self.http.put(
            "/cache/topology", params={"key": "blob", "ttl_seconds": "60"}, content=value, headers=self.auth
        )
        expect(stored.status_code == 204, stored.text)
        got = self.http.get("/cache/topology", params={"key": "blob"}, headers=self.auth)
        expect(got.status_code == 200, got.text)
        expect(got.content == value, "the value read back differs")
        assert_security_headers(got)
        expect(got.headers.get("cache-control") == "no-store", f"Cache-Control: {got.headers.get('cache-control')!r}")
        return f"PUT 204, GET 200 with the same {len(got.content)} bytes; security headers and no-store present"

    def cache_too_large(self) -> str:
        value = b"x" * CACHE_MAX_ITEM_BYTES
        response = self.http.put(
            "/cache/topology", params={"key": "big", "ttl_seconds": "60"}, content=value, headers=self.auth
        )
        expect(response.status_code == 400, f"{response.status_code} {response.text[:200]}")
        return f"400 {response.json()['message']!r}"

    def topic_sse(self) -> str:
        events: list[tuple[float, str]] = []
        opened = threading.Event()
        client = self.topology.client(timeout=httpx.Timeout(60, read=60))

        def read() -> None:
            headers = {**self.auth, "Accept": "text/event-stream"}
            with client.stream("GET", "/topics/topology/news", headers=headers) as stream:
                if stream.status_code != 200:
                    return
                for line in stream.iter_lines():
                    if line.startswith(": connected"):
                        opened.set()
                    if line.startswith("data:"):
                        events.append((time.time(), line))
                        return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        expect(opened.wait(10), "the stream's first comment did not arrive through the proxy")
        published = time.time()
        response = self.http.post(
            "/topics/topology/news", content=b"hello over SSE", headers={**self.auth, "Content-Type": "text/plain"}
        )
        expect(response.status_code == 204, response.text)
        reader.join(10)
        client.close()
        expect(events, "no event arrived within 10 s")
        received, line = events[0]
        message = json.loads(line.removeprefix("data:").strip())
        expect(message["value"] == {"text": "hello over SSE"}, message)
        delay = 1000 * (received - published)
        return f"event {message['topic_sequence_number']} received {delay:.0f} ms after the publish"

    def topic_long_poll(self) -> str:
        poll = BackgroundCall(
            lambda: self.http.get("/topics/topology/news", params={"sequence_number": "0"}, headers=self.auth)
        )
        time.sleep(1)
        published = time.time()
        response = self.http.post(
            "/topics/topology/news",
            content=b"hello over long poll",
            headers={**self.auth, "Content-Type": "text/plain"},
        )
        expect(response.status_code == 204, response.text)
        answer = poll.result(timeout=20)
        answered = time.time()
        expect(answer.status_code == 200, answer.text)
        items = answer.json()["items"]
        expect(items and items[-1]["item"]["value"] == {"text": "hello over long poll"}, items)
        return f"{len(items)} item(s), answered {1000 * (answered - published):.0f} ms after the publish"

    def idle_long_poll(self) -> str:
        started = time.monotonic()
        with self.topology.client(timeout=LONG_POLL_SECONDS + 30) as client:
            response = client.get("/topics/topology/idle", params={"sequence_number": "0"}, headers=self.auth)
        waited = time.monotonic() - started
        expect(response.status_code == 200, f"{response.status_code} {response.text[:200]}")
        expect(response.json() == {"items": []}, response.text)
        expect(waited >= LONG_POLL_SECONDS - 1, f"answered after {waited:.1f} s")
        return f"200 {{'items': []}} after {waited:.1f} s"

    def delayed_job(self) -> str:
        at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        target = self.topology.target.url
        response = self.http.post(
            "/jobs.json",
            headers=self.auth,
            data={
                "job[uri]": f"{target}/hook?run=topology",
                "job[at]": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "job[method]": "POST",
                "job[body]": '{"hello": "job"}',
                "job[headers][Content-Type]": "application/json",
                "job[callback_uri]": f"{target}/done",
            },
        )
        expect(response.status_code == 200, response.text)
        job = response.json()["success"]["job"]
        hit = self.topology.target.wait_for(lambda r: r.path.startswith("/hook"), timeout=30)
        lateness = hit.at - at.timestamp()
        expect(hit.body == b'{"hello": "job"}', hit.body)
        secret = self.http.post("/jobs/signing-secret.json", headers=self.auth)  # the owner's, shown this once
        expect(secret.status_code == 200, secret.text)
        receiver = Webhook(secret.json()["success"]["signing_secret"]["secret"])
        receiver.verify(hit.body, dict(hit.headers), json_parse=False)  # as a Standard Webhooks receiver checks
        callback = self.topology.target.wait_for(lambda r: r.path == "/done", timeout=30)
        receiver.verify(callback.body, dict(callback.headers), json_parse=False)

        def state() -> str:
            return self.http.get(f"/jobs/{job['id']}.json", headers=self.auth).json()["success"]["job"]["state"]

        final = "succeeded" if poll(lambda: state() == "succeeded", timeout=15, every=0.2) else state()
        expect(final == "succeeded", final)
        return (
            f"target called {lateness * 1000:.0f} ms after `at`, request and callback signed and verified "
            f"(Standard Webhooks, {hit.headers['webhook-signature'][:10]}...); "
            f"callback {callback.at - hit.at:.2f} s later; job {final}"
        )

    def media(self) -> str:
        png = bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
        )
        response = self.http.post(
            "/api/v1/binarycontent/", headers=self.auth, files={"content": ("dot.png", png, "image/png")}
        )
        expect(response.status_code == 201, response.text)
        url = response.json()["content"]
        expect(url.startswith(f"{self.topology.base}/media/"), url)
        got = self.http.get(url.removeprefix(self.topology.base))
        expect(got.status_code == 200 and got.content == png, got.status_code)
        expect(got.headers.get("server", "").startswith("nginx"), got.headers.get("server"))
        return f"{url.removeprefix(self.topology.base)}: 200, {len(got.content)} bytes, served by nginx"

    def no_token_logged(self) -> str:
        # The checks above pass the token in headers; this one passes it in the query string.
        self.http.get("/cache/topology", params={"key": "blob", "token": self.token})
        log = (self.topology.tmp / "logs" / "nginx-access.log").read_text()
        expect(self.token not in log, "the token is in nginx's access log")
        return f"{len(log.splitlines())} requests logged, none with the token"

    def connections(self) -> str:
        """What the topology holds open at the end: figures for sizing PostgreSQL and Redis."""
        with psycopg.connect(f"{POSTGRES}/postgres") as connection:
            row = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DATABASE]).fetchone()
        clients = redis.Redis.from_url(REDIS_URL).client_list()
        in_db = sum(1 for client in clients if client.get("db") == REDIS_URL.rsplit("/", 1)[1])
        return (
            f"Open at the end: {row[0]} PostgreSQL connections to {DATABASE}, {in_db} Redis connections on db 13 "
            f"({WEB_PROCESSES} web processes, {WORKERS} workers of WORKER_CONCURRENCY=2, 1 scheduler, "
            "after the checks above)."
        )

    def both_web_processes(self) -> str:
        log = (self.topology.tmp / "logs" / "nginx-access.log").read_text()
        counts = {port: log.count(f"upstream=127.0.0.1:{port}") for port in self.topology.web_ports}
        expect(all(counts.values()), counts)
        return ", ".join(f"127.0.0.1:{port}: {count} requests" for port, count in counts.items())


class BackgroundCall:
    """`call()` in a thread; `result()` waits for what it returned, or raises what it raised."""

    def __init__(self, call: Callable) -> None:
        self.value = self.error = None
        self.thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self.thread.start()

    def _run(self, call: Callable) -> None:
        try:
            self.value = call()
        except Exception as error:  # handed to the caller of result()
            self.error = error

    def result(self, timeout: float = 120):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"no answer within {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self.value
