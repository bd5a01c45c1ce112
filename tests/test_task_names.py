"""The task names are a public contract: spelled once (worker.booking.task_names) and
pinned here, with their queues. Everything else names them through `TaskName`.

Also: one task module per step of worker/booking, named after it (tasks/<step>.py).
"""

from __future__ import annotations

from pathlib import Path

from worker.booking.states import DRIVER
from worker.booking.task_names import DriverTask, TaskName

ROOT = Path(__file__).resolve().parent.parent
# The public names and their queues; a change here breaks deployed workers and monitors.
CONTRACT = {
    "booking.reserve": "bookings",
    "booking.payment_succeeded": "payments",
    "booking.create_order": "payments",
    "booking.fetch_documents": "documents",
    "booking.notify": "callbacks",
    "booking.sweep": "maintenance",
}


def test_the_task_names_are_the_public_ones() -> None:
    assert sorted(name.value for name in TaskName) == sorted(CONTRACT)


def test_the_app_registers_every_task_and_routes_it_to_its_queue() -> None:
    from worker.app import app

    app.loader.import_default_modules()  # what a worker imports (celeryconfig.imports)
    registered = {name for name in app.tasks if name.startswith("booking.")}
    assert registered == set(CONTRACT)
    for name, queue in CONTRACT.items():
        assert app.amqp.router.route({}, name)["queue"].name == queue, name


def test_the_driven_states_name_driver_tasks() -> None:
    drivers: set[DriverTask] = {TaskName.RESERVE, TaskName.CREATE_ORDER,
                                TaskName.FETCH_DOCUMENTS}
    assert set(DRIVER.values()) == drivers


def test_each_task_module_is_named_after_its_domain_step() -> None:
    modules = {p.stem for p in (ROOT / "tasks").glob("*.py")} - {"__init__", "policy"}
    assert modules == {"reserve", "payment", "ordering", "documents", "callbacks", "sweep"}
    for stem in modules:
        assert (ROOT / "worker" / "booking" / f"{stem}.py").is_file(), stem
