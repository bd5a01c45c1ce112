"""Korus sandbox: a local, faithful simulator of the Korus Ticket API endpoints the worker uses.

Start it in-process with `korus_sandbox.server.start_sandbox`, or as a process with
`booking-worker sandbox` / `python -m korus_sandbox`. It serves a seeded catalog, holds
that lapse, orders made at most once per reservation, order documents as real PDFs, the
OpenID token endpoint, and admin routes under `/_sandbox/` (reset, inspection, faults).
The rules it follows are the "Sandbox rules" of `korus-api.md`.
"""
