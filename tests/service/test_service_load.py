"""Load: 20 concurrent clients against a server process of its own (loopback only, a bounded
number of requests). Every request gets its own notes or a 429/503 with Retry-After; none is
lost or answered with another client's notes; memory stays flat; /healthz answers throughout.
"""

import os
import pathlib
import subprocess
import sys
import threading
import time

import httpx
import pytest
from service_support import expected_tone_notes, tone_wav

pytestmark = pytest.mark.backend_independent

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
API = "/v1/transcriptions"
CLIENTS = 20
REQUESTS_PER_CLIENT = 5
DEADLINE_SECONDS = 90
MAX_KEPT_RESULTS = 10
RSS_GROWTH_LIMIT_MB = 40


@pytest.fixture(scope="module")
def server_process():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(HERE)])}
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "stub_server.py"),
            "--queue-size",
            "4",
            "--max-kept-results",
            str(MAX_KEPT_RESULTS),
            "--seconds-per-note",
            "0.005",
        ],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO_ROOT,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("PORT "), f"the server did not start: {line!r}"
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        wait_for_health(url)
        yield process, url
    finally:
        process.terminate()
        process.wait(30)


def wait_for_health(url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server never became healthy")


def rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Client(threading.Thread):
    """Sends its own tones (its own pitch, varying lengths) and checks every answer."""

    def __init__(self, url, index, requests, deadline):
        super().__init__(daemon=True)
        self.url, self.index, self.requests, self.deadline = url, index, requests, deadline
        self.pitch = 48 + index
        self.use_jobs = index % 2 == 0  # half of the clients go through jobs and polling
        self.outcomes = []  # "ok", "refused", or a description of what went wrong

    def run(self):
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for number in range(self.requests):
                if time.monotonic() > self.deadline:
                    self.outcomes.append("ran out of time")
                    return
                seconds = 0.5 + 0.25 * (number % 3)
                try:
                    self.outcomes.append(self.one_request(client, seconds))
                except Exception as error:  # recorded, so the test reports every failure
                    self.outcomes.append(f"request {number}: {type(error).__name__}: {error}")

    def one_request(self, client, seconds):
        response = client.post(
            API, params={"async": str(self.use_jobs).lower()}, content=tone_wav(self.pitch, seconds)
        )
        if response.status_code in (429, 503):
            if "retry-after" not in response.headers or "error" not in response.json():
                return f"{response.status_code} without Retry-After or error: {response.text}"
            time.sleep(0.05)
            return "refused"
        if self.use_jobs:
            if response.status_code != 202:
                return f"expected 202, got {response.status_code}: {response.text}"
            response = self.wait_for_result(client, response.json())
        if response.status_code != 200:
            return f"got {response.status_code}: {response.text}"
        notes = [(n["onset"], n["pitch"]) for n in response.json()["notes"]]
        if notes != expected_tone_notes(self.pitch, seconds):
            return f"someone else's notes: {notes[:3]} for pitch {self.pitch}, {seconds} s"
        return "ok"

    def wait_for_result(self, client, job):
        while job["status"] not in ("done", "failed", "cancelled"):
            time.sleep(0.02)
            job = client.get(job["status_url"]).json()
        return client.get(job.get("result_url") or job["status_url"])


def run_clients(url, clients, requests):
    deadline = time.monotonic() + DEADLINE_SECONDS
    threads = [Client(url, index, requests, deadline) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SECONDS + 30)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    return threads


def test_twenty_concurrent_clients_each_get_their_own_notes_or_a_clear_refusal(server_process):
    process, url = server_process
    run_clients(url, CLIENTS, 1)  # warm-up, so that first-use allocations do not count
    rss_before = rss_mb(process.pid)

    health_failures, health_polls = [], []
    stop = threading.Event()

    def watch_health():
        with httpx.Client(base_url=url, timeout=5) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.TransportError as error:
                    status = repr(error)
                health_polls.append(time.monotonic() - started)
                if status != 200:
                    health_failures.append(status)
                time.sleep(0.1)

    watcher = threading.Thread(target=watch_health, daemon=True)
    watcher.start()
    try:
        clients = run_clients(url, CLIENTS, REQUESTS_PER_CLIENT)
    finally:
        stop.set()
        watcher.join(10)

    outcomes = [outcome for client in clients for outcome in client.outcomes]
    problems = [o for o in outcomes if o not in ("ok", "refused")]
    assert not problems, problems
    assert len(outcomes) == CLIENTS * REQUESTS_PER_CLIENT  # none lost
    assert outcomes.count("ok") >= CLIENTS  # the server did real work under load...
    assert outcomes.count("refused") > 0  # ...and its queue bound was reached
    assert not health_failures and len(health_polls) > 5, health_failures
    health = httpx.get(url + "/healthz").json()
    assert health["queued"] == 0 and health["running"] == 0
    assert health["kept_results"] <= MAX_KEPT_RESULTS
    growth = rss_mb(process.pid) - rss_before
    assert growth < RSS_GROWTH_LIMIT_MB, f"server memory grew by {growth:.1f} MB"
    assert process.poll() is None
