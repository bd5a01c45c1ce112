"""The HTTP front: payment webhooks in, merchant API, probes, metrics and its own spec.

- `app.py`: `create_app()` wires everything; `wsgi.py`: the gunicorn entry point;
  `gunicorn_config.py`: the serving stack (gevent worker, deadlines, caps) of both the
  Procfile and `command.py` (`booking-worker web`); `metrics_listener.py`: METRICS_PORT.
- `webhooks.py` (`POST /webhooks/...`) ← `signatures.py` (Stripe, Standard Webhooks) and
  `payment_events.py` (provider bodies → `PaymentEvent`), then
  `payment_ingress.py` (one Redis script) or `BookingService.record_payment`: this is
  where a webhook becomes a task message.
- `merchant.py` (`/v1/bookings...`) with `auth.py` (bearer keys) and `views.py` (the JSON
  a merchant sees: no customer data).
- `body.py` (bounded reads, JSON), `problems.py` (RFC 9457 errors), `metrics.py`,
  `health.py`, `openapi.py`.
"""
