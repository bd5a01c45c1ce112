"""Korus collections: a typed `Page[T]` and a bounded walk over its `view.next` links."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from pydantic import Field

from worker.korus.errors import KorusClientError
from worker.korus.models import KorusModel

T = TypeVar("T", bound=KorusModel)


class PageView(KorusModel):
    iri: str | None = Field(default=None, alias="@id")
    first: str | None = None
    last: str | None = None
    previous: str | None = None
    next: str | None = None


class Page(KorusModel, Generic[T]):
    """A Korus collection page: `member`, `totalItems`, `view` links."""

    member: list[T] = Field(default_factory=list)
    total_items: int | None = None
    view: PageView | None = None

    @property
    def next_iri(self) -> str | None:
        return self.view.next if self.view is not None else None


def iter_pages(
    first: Page[T], fetch: Callable[[str], Page[T]], *, max_pages: int = 100
) -> Iterator[T]:
    """Yield members of `first` and of each `view.next` page, at most `max_pages` pages.

    Going past `max_pages`, a repeated `next` link or an empty page that links on all
    raise instead of silently truncating: a caller reconciling orders must not conclude
    "no order" from a partial listing.
    """
    page = first
    seen: set[str] = set()
    for count in range(1, max_pages + 1):
        yield from page.member
        next_iri = page.next_iri
        if not next_iri:
            return
        if not page.member or next_iri in seen:
            # An empty page that still links on, or a link loop: the listing cannot be
            # trusted to be complete, and "complete" is what reconciliation relies on.
            raise KorusClientError(
                "collection paging is inconsistent (empty page or repeated next link)",
                method="GET",
                path=next_iri,
            )
        if count == max_pages:
            break
        seen.add(next_iri)
        page = fetch(next_iri)
    raise KorusClientError(
        f"collection has more than {max_pages} pages", method="GET", path=page.next_iri or ""
    )
