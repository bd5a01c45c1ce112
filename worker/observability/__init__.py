"""Sentry and logs: every line and event traceable to a booking, none carrying a customer.

- `sentry.init_sentry(settings, role)`: once per process (worker: `celeryd_init`, beat:
  `beat_init`, web: the app factory). CeleryIntegration with beat check-ins (Sentry
  Crons), `send_default_pii=False`, no request bodies, and `scrub` on every event,
  transaction and breadcrumb. Nothing happens when SENTRY_DSN is unset.
- `logs.configure_logging(settings)`: one handler on the root logger whose records carry
  the current booking id and Celery task id (text or JSON lines), scrubbed like events
  (messages and tracebacks).
- `wiring.install()`: connects both to the Celery signals, and tags each task's log lines
  and Sentry scope with its booking id (the first argument of every booking task).
- `scrub`: what both apply to every value before it leaves the process.

Frame local variables are not sent at all (`include_local_variables=False`): a task's
locals hold whole booking records. The scrubber drops values under sensitive keys (names,
emails, phones, every customer, beneficiary and ticket-form field: nationality, date and
place of birth, formData, tokens, secrets, Authorization, passwords, DSNs), masks whole
customer, beneficiary and formData structures inside strings (`customer={...}`,
`Beneficiary(...)`, `'formData': {...}` in reprs, JSON and validation errors), and masks
email-looking, phone-looking and bearer/JWT-looking text and `key=value` pairs of the
sensitive keys. It cannot recognise a bare name in free text: code must not put customer
names in messages (alerts carry ids only).
"""
