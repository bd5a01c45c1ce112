"""Korus collections: `page` (from 1) and `itemsPerPage` (0 to 50, default 10).

A bad `page`/`itemsPerPage` is a Korus-shaped 400. `view` links keep the other query
parameters, so following `next` repeats the same filter; a collection that fits on its
first page has no `view` (as the documented document listing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from korus_sandbox.errors import ApiError
from korus_sandbox.httpkit import Request

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 50
T = TypeVar("T")


def _int_param(req: Request, name: str, default: int, low: int, high: int) -> int:
    raw = req.query_value(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 9 or not low <= int(raw) <= high:
        raise ApiError(400, f'"{name}" must be an integer between {low} and {high}.')
    return int(raw)


def _same(item: Any) -> dict[str, Any]:
    return dict(item)


def collection(
    req: Request,
    type_name: str,
    items: Sequence[T],
    render: Callable[[T], dict[str, Any]] = _same,
) -> dict[str, Any]:
    """One page of `items` as a JSON-LD Collection; only that page is rendered."""
    page = _int_param(req, "page", 1, 1, 10**9)
    per_page = _int_param(req, "itemsPerPage", DEFAULT_PER_PAGE, 0, MAX_PER_PAGE)
    total = len(items)
    last = max(1, -(-total // per_page)) if per_page else 1
    start = (page - 1) * per_page
    others = [
        (k, v)
        for k, values in req.query.items()
        if k not in ("page", "itemsPerPage")
        for v in values
    ]

    def link(number: int) -> str:
        query = urlencode([*others, ("itemsPerPage", str(per_page)), ("page", str(number))])
        return f"{req.path}?{query}"

    view: dict[str, Any] = {
        "@id": link(page),
        "@type": "PartialCollectionView",
        "first": link(1),
        "last": link(last),
    }
    if page > 1:
        view["previous"] = link(min(page - 1, last))
    if page < last:
        view["next"] = link(page + 1)
    answer: dict[str, Any] = {
        "@context": f"/contexts/{type_name}",
        "@id": req.path,
        "@type": "Collection",
        "totalItems": total,
        "member": [render(item) for item in items[start : start + per_page]],
    }
    if last > 1 or page > 1:
        # A collection that fits one page comes without `view`, as the documented
        # document listing does; a paged one links on.
        answer["view"] = view
    return answer
