"""`booking-worker web` (worker.http.command): the development server answers."""

from __future__ import annotations

import subprocess
import sys
import threading

import requests

from tests.http.helpers import ROOT, web_env


def test_the_development_server_prints_its_url_and_serves_the_app(redis_url: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from worker.http.command import web; web()", "--port", "0"],
        cwd=ROOT,
        env=web_env(redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        stdout = process.stdout
        assert stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert lines and lines[0].startswith("http://127.0.0.1:"), lines
        url = lines[0].strip()

        assert requests.get(url + "/healthz", timeout=10).json() == {"status": "ok"}
        missing = requests.get(url + "/v1/bookings/bk_nope", timeout=10)
        assert missing.status_code == 401
        assert missing.headers["Content-Type"] == "application/problem+json"
    finally:
        process.terminate()
        process.wait(10)
