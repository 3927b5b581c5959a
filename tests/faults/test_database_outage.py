"""PostgreSQL backends terminated while labelers submit through the API of a live server: no
submission the API acknowledged is lost or doubled, and the next request succeeds."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from annotation.models import Assignment, Demonstration
from tests.faults.processes import database_url

TERMINATIONS = 3
PROMPTS = 60
TERMINATE_ALL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


class Labeler:
    """Leases and submits demonstrations like the page does: a failed request is retried, a
    submission with the same idempotency key, until it is acknowledged."""

    def __init__(self, base_url: str, token: str, name: str) -> None:
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.base_url, self.name = base_url, name
        self.acknowledged: list[int] = []  # assignment ids whose submission answered 2xx
        self.failures: list[float] = []  # when a request failed (the database was cut meanwhile)
        self.error: BaseException | None = None

    def _post(self, path: str, body: dict) -> requests.Response:
        for _ in range(50):
            try:
                response = self.session.post(f"{self.base_url}{path}", json=body, timeout=10)
            except requests.RequestException:
                response = None
            if response is not None and response.status_code < 500:
                return response
            self.failures.append(time.monotonic())
            time.sleep(0.05)
        raise AssertionError(f"{path} kept failing")

    def run(self) -> None:
        try:
            while True:
                lease = self._post("/api/labeler/assignments/lease/", {"kind": "demonstrate"})
                if lease.status_code == 204:
                    return
                assert lease.status_code in (200, 201), lease.text
                task = lease.json()["id"]
                key = f"{self.name}-{task}"
                answer = self._post(
                    f"/api/labeler/assignments/{task}/demonstration/",
                    {"text": f"A careful answer from {self.name} to task {task}.", "idempotency_key": key},
                )
                assert answer.status_code in (200, 201), answer.text
                self.acknowledged.append(task)
        except BaseException as error:  # surfaced by the test's thread join
            self.error = error


@pytest.mark.postgres
@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_terminated_database_backends_lose_no_acknowledged_submission(
    live_server, project, labeler, other_labeler, make_prompts
):
    make_prompts(project, PROMPTS)  # one demonstration each (the project's demonstrations_per_prompt)
    labelers = [
        Labeler(live_server.url, Token.objects.create(user=user).key, user.username)
        for user in (labeler, other_labeler)
    ]
    threads = [threading.Thread(target=each.run, daemon=True) for each in labelers]
    for thread in threads:
        thread.start()
    terminations: list[float] = []
    with psycopg.connect(database_url(), autocommit=True) as killer:
        for _ in range(TERMINATIONS):
            time.sleep(0.3)
            assert any(thread.is_alive() for thread in threads), "the submissions ended before the cut"
            killer.execute(TERMINATE_ALL)
            terminations.append(time.monotonic())
    for thread in threads:
        thread.join(timeout=40)
        assert not thread.is_alive(), "a labeler hung"
    for each in labelers:
        assert each.error is None, each.error

    connection.close()  # this thread's connection was terminated too
    acknowledged = [task for each in labelers for task in each.acknowledged]
    stored = dict(Demonstration.objects.values_list("assignment_id", "pk"))
    lost = [task for task in acknowledged if task not in stored]
    failures = sorted(moment for each in labelers for moment in each.failures)
    # How long requests kept failing after each termination: the first success came right after.
    recovery = max(max((f - t for f in failures if 0 <= f - t < 5), default=0.0) for t in terminations)
    print(
        f"\ndatabase backends terminated {TERMINATIONS} times during {len(acknowledged)} submissions: "
        f"{len(failures)} failed requests retried, recovered within {recovery:.2f} s, lost: {len(lost)}"
    )
    assert len(acknowledged) == PROMPTS and not lost
    assert Demonstration.objects.count() == PROMPTS  # nothing stored twice either
    assert not Assignment.objects.filter(status="leased").exists()
    assert recovery < 2
