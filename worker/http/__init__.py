"""The HTTP front: payment webhooks in, merchant API, probes, metrics and its own spec.

- `app.py`: `create_app()` wires everything; `wsgi.py`: the gunicorn entry point;
  `command.py`: `booking-worker web`, a development server.
- `webhooks.py` (`POST /webhooks/...`) ← `signatures.py` (Stripe, Standard Webhooks) and
  `payment_events.py` (provider bodies → `PaymentEvent`), then
  `BookingService.record_payment`: this is where a webhook becomes a task message.
- `merchant.py` (`/v1/bookings...`) with `auth.py` (bearer keys) and `views.py` (the JSON
  a merchant sees: no customer data).
- `body.py` (bounded reads, JSON), `problems.py` (RFC 9457 errors), `metrics.py`,
  `health.py`, `openapi.py`.
"""
