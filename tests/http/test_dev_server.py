"""`booking-worker web` (worker.http.command): the production serving stack, on any port."""

from __future__ import annotations

import subprocess
import sys

import requests

from tests.http.helpers import ROOT, web_env
from tests.support.processes import printed_url


def test_booking_worker_web_prints_its_url_and_serves_the_app_on_gunicorn(
    redis_url: str,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from worker.http.command import web; web()", "--port", "0"],
        cwd=ROOT,
        env=web_env(redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = printed_url(process)

        health = requests.get(url + "/healthz", timeout=10)
        assert health.json() == {"status": "ok"}
        assert health.headers["Server"].startswith("gunicorn")  # the Procfile's stack
        missing = requests.get(url + "/v1/bookings/bk_nope", timeout=10)
        assert missing.status_code == 401
        assert missing.headers["Content-Type"] == "application/problem+json"
    finally:
        process.terminate()  # gunicorn's graceful stop: workers finish, up to 20 s
        process.wait(60)
