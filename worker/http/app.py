"""`create_app()`: the Falcon WSGI app of the HTTP front (merchant API, webhooks, probes).

Building the app reads the settings and wires the per-process service; it opens no
connection (Redis and the broker are reached on first use), so gunicorn workers start
even while Redis restarts, and /readyz tells when they can serve.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
from celery import Celery

from worker.booking.service import BookingService
from worker.http import problems
from worker.http.auth import MerchantAuthMiddleware, MerchantKeys
from worker.http.health import Healthz, Readyz, redis_check
from worker.http.merchant import (
    BookingCancel,
    BookingDocumentsRefresh,
    BookingItem,
    BookingsCollection,
)
from worker.http.metrics import Metrics, MetricsMiddleware, MetricsResource
from worker.http.openapi import OpenApiResource
from worker.http.payment_ingress import PaymentIngress
from worker.http.signatures import StandardWebhooksVerifier, StripeVerifier
from worker.http.webhooks import StandardPaymentsWebhook, StripeWebhook, UnconfiguredWebhook
from worker.probes import broker_check
from worker.settings import Settings

log = logging.getLogger("booking.http")

# Every route the front serves (the OpenAPI document lists the same set; tests check it).
ROUTES = (
    "/v1/bookings",
    "/v1/bookings/{booking_id}",
    "/v1/bookings/{booking_id}/cancel",
    "/v1/bookings/{booking_id}/documents/refresh",
    "/webhooks/stripe",
    "/webhooks/payments",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
)

WsgiApp = falcon.App[falcon.Request, falcon.Response]


def _webhooks(app: WsgiApp, service: BookingService, metrics: Metrics, settings: Settings,
              celery_app: Celery) -> None:
    tolerance = settings.webhook_tolerance_seconds
    record = PaymentIngress(service, celery_app).record
    stripe: object
    if settings.stripe_webhook_secret:
        verifier = StripeVerifier.from_settings(settings.stripe_webhook_secret, tolerance)
        stripe = StripeWebhook(service, metrics, verifier, record)
    else:
        log.warning("STRIPE_WEBHOOK_SECRET is not set: /webhooks/stripe answers 503")
        stripe = UnconfiguredWebhook("stripe", "STRIPE_WEBHOOK_SECRET", metrics)
    payments: object
    if settings.payments_webhook_secret:
        standard = StandardWebhooksVerifier.from_settings(
            settings.payments_webhook_secret, tolerance
        )
        payments = StandardPaymentsWebhook(service, metrics, standard, record)
    else:
        log.warning("PAYMENTS_WEBHOOK_SECRET is not set: /webhooks/payments answers 503")
        payments = UnconfiguredWebhook("payments", "PAYMENTS_WEBHOOK_SECRET", metrics)
    app.add_route("/webhooks/stripe", stripe)
    app.add_route("/webhooks/payments", payments)


def create_app(
    service: BookingService | None = None,
    settings: Settings | None = None,
    *,
    celery_app: Celery | None = None,
) -> WsgiApp:
    """The WSGI app. Defaults: the process-wide service, settings and Celery app."""
    if settings is None:
        from worker.settings import load_settings

        settings = load_settings()
    if service is None:
        from worker import runtime

        service = runtime.service()
    if celery_app is None:
        from worker.app import app as celery_app

    metrics = Metrics(service.redis)
    keys = MerchantKeys(settings.merchant_api_keys)
    middleware: list[Any] = [MetricsMiddleware(metrics), MerchantAuthMiddleware(keys)]
    app: WsgiApp = falcon.App(
        middleware=middleware,
        cors_enable=False,
    )
    app.req_options.strip_url_path_trailing_slash = False
    problems.install(app)
    app.add_error_handler(problems.UNAVAILABLE_ERRORS, problems.handle_unavailable)

    app.add_route("/v1/bookings", BookingsCollection(service, settings.callback_policy))
    app.add_route("/v1/bookings/{booking_id}", BookingItem(service))
    app.add_route("/v1/bookings/{booking_id}/cancel", BookingCancel(service))
    app.add_route("/v1/bookings/{booking_id}/documents/refresh", BookingDocumentsRefresh(service))
    _webhooks(app, service, metrics, settings, celery_app)
    app.add_route("/healthz", Healthz())
    app.add_route(
        "/readyz",
        Readyz([("redis", redis_check(service.redis)), ("broker", broker_check(celery_app))]),
    )
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    app.add_route("/metrics", MetricsResource(metrics, token))
    app.add_route("/openapi.json", OpenApiResource())
    return app
