"""Helpers of the tests that start a server command as a child process."""

from __future__ import annotations

import subprocess
import threading


def printed_url(process: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """The loopback URL a server command prints first (flushed, so `--port 0` can be
    used). A thread reads it, so a process that prints nothing fails the test after
    `timeout` seconds instead of hanging it."""
    stdout = process.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines and lines[0].startswith("http://127.0.0.1:"), lines
    return lines[0].strip()
