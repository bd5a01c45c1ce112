"""What every route handler receives: the state, the fault book, the URL signer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from worker.sandbox.documents import UrlSigner
from worker.sandbox.faults import FaultBook
from worker.sandbox.state import SandboxState


@dataclass
class SandboxContext:
    state: SandboxState
    faults: FaultBook
    signer: UrlSigner
    # Set when the sandbox stops: fault sleeps end early so threads exit promptly.
    stopping: threading.Event = field(default_factory=threading.Event)
    # The URL the sandbox listens on (for links when a request carries no Host header).
    base_url: str = ""
