"""What every route handler receives: the state, the fault book, the URL signer."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from korus_sandbox.documents import UrlSigner
from korus_sandbox.faults import FaultBook
from korus_sandbox.state import SandboxState


@dataclass
class SandboxContext:
    state: SandboxState
    faults: FaultBook
    signer: UrlSigner
    # Set when the sandbox stops: fault sleeps end early so threads exit promptly.
    stopping: threading.Event = field(default_factory=threading.Event)
    # The URL the sandbox listens on (for links when a request carries no Host header).
    base_url: str = ""
    # Answer shapes: "documented" or "varied" (korus_sandbox/shapes.py).
    shapes: str = "documented"
    shapes_rng: random.Random = field(default_factory=random.Random)
    shapes_lock: threading.Lock = field(default_factory=threading.Lock)
