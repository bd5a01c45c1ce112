"""`booking-worker sandbox` (and `python -m korus_sandbox`): run the Korus sandbox.

Prints the URL (first line of stdout, flushed, so a parent process can read the port
when `--port 0` was asked) and serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from korus_sandbox.faults import FaultRule, parse_fault_spec
from korus_sandbox.server import KORUS_ENDPOINTS, SandboxConfig, start_sandbox
from korus_sandbox.shapes import SHAPES

POSITIVE = click.FloatRange(min=0, min_open=True)


def _parse_faults(
    ctx: click.Context, param: click.Parameter, specs: tuple[str, ...]
) -> list[FaultRule]:
    rules = []
    for spec in specs:
        try:
            rule = parse_fault_spec(spec)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None
        if rule.endpoint != "*" and rule.endpoint not in KORUS_ENDPOINTS:
            raise click.BadParameter(
                f"unknown endpoint {rule.endpoint!r}; use '*' or one of: "
                + "; ".join(sorted(KORUS_ENDPOINTS))
            )
        rules.append(rule)
    return rules


# Every option shows its default in --help (as under `booking-worker`, whose group says so).
@click.command("sandbox", context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", default=8765, type=click.IntRange(0, 65535),
              help="TCP port (0: any free port).")
@click.option("--hold-seconds", default=900.0, type=POSITIVE, help="How long a hold lasts.")
@click.option("--client-id", default="sandbox")
@click.option("--client-secret", default="sandbox")
@click.option("--token-lifetime", default=1800.0, type=POSITIVE,
              help="Access token lifetime (s).")
@click.option("--documents-delay", default=10.0, type=click.FloatRange(min=0),
              help="Delay before 'Late Documents Tour' documents are downloadable (s).")
@click.option("--seed", default=0, type=int, help="Seeds the catalog ids and the fault draws.")
@click.option(
    "--shapes",
    type=click.Choice(SHAPES),
    default="documented",
    help="Answer shapes: those of the Korus documentation's examples, or a random mix of "
    "the tolerated variants ([]/null/missing empty objects, hydra: prefixes, other "
    "offsets, unknown fields).",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    callback=_parse_faults,
    metavar="SPEC",
    help="ENDPOINT:key=value,... e.g. 'POST /v1/booking/orders/_bulk:error_rate=0.1'"
    " or '*:latency_ms=50' or '...:next=drop|timeout_after_commit'. Repeatable.",
)
def sandbox(
    host: str,
    port: int,
    hold_seconds: float,
    client_id: str,
    client_secret: str,
    token_lifetime: float,
    documents_delay: float,
    seed: int,
    shapes: str,
    faults: list[FaultRule],
) -> None:
    """Run the Korus sandbox (a local Korus Ticket API simulator) until interrupted."""
    config = SandboxConfig(
        host=host,
        port=port,
        hold_seconds=hold_seconds,
        client_id=client_id,
        client_secret=client_secret,
        token_lifetime_seconds=token_lifetime,
        documents_delay_seconds=documents_delay,
        seed=seed,
        shapes=shapes,
        faults=list(faults),
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sb = start_sandbox(config)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error}") from None
    try:
        click.echo(sb.url)
        click.echo(
            f"Korus sandbox serving at {sb.url} (token URL {sb.token_url}); Ctrl-C to stop.",
            err=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
