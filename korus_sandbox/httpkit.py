"""The sandbox's tiny web layer: request/response values and a route table.

Routes are templates such as `/v1/booking/orders/{id}`; the template string (with its
method) is the endpoint's name in `/_sandbox/calls` and in fault rules. A path matching a
template under another method is a 405 with `Allow`; no template at all is a 404.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any

from korus_sandbox.errors import ApiError

if TYPE_CHECKING:
    from korus_sandbox.context import SandboxContext

JSON_LD = "application/ld+json; charset=utf-8"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return str(value) if value is not None else None

    def json(self) -> Any:
        """The body as JSON; 400 (never 500) when it is not valid UTF-8 JSON."""
        if not self.body.strip():
            raise ApiError(400, "Syntax error: the request body is empty.")
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ApiError(400, "Syntax error: the request body is not valid JSON.") from None

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_LD
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: object, content_type: str = JSON_LD) -> Response:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(status, text.encode("utf-8"), content_type)


Handler = Callable[["SandboxContext", Request], Response]


@dataclass(frozen=True)
class Route:
    """One endpoint. `auth`: needs a bearer token; `korus`: counted and open to faults."""

    method: str
    template: str
    handler: Handler
    auth: bool = True
    korus: bool = True
    counted: bool = True

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{[a-z_]+\\\}", "([^/]+)", re.escape(template))
    return re.compile(pattern)


class Router:
    """Finds the route of a (method, path), with its path parameters."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._compiled = [
            (route, _compile(route.template), re.findall(r"\{([a-z_]+)\}", route.template))
            for route in routes
        ]
        self._static = {(r.method, r.template): r for r in routes if "{" not in r.template}

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route and its parameters, or ApiError 404/405."""
        static = self._static.get((method, path))
        if static is not None:
            return static, {}
        allowed: list[str] = []
        for route, pattern, names in self._compiled:
            found = pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return route, dict(zip(names, found.groups(), strict=True))
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                f'No route found for "{method} {path}": Method Not Allowed '
                f"(Allow: {', '.join(sorted(set(allowed)))})",
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, f'No route found for "{method} {path}"')
