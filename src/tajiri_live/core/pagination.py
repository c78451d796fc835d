"""Laravel's pagination `meta` and `links`, as the mobile client reads them."""

from __future__ import annotations

from typing import Any

from fastapi import Request


def page_links(
    request: Request, *, page: int, per_page: int, total: int, count: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`count` is how many items this page holds."""
    last_page = max(1, -(-total // per_page))

    def link(number: int) -> str:
        return str(request.url.include_query_params(page=number))

    first_index = (page - 1) * per_page
    meta = {
        "current_page": page,
        "last_page": last_page,
        "per_page": per_page,
        "total": total,
        "from": first_index + 1 if count else None,
        "to": first_index + count if count else None,
    }
    links = {
        "first": link(1),
        "last": link(last_page),
        "prev": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < last_page else None,
    }
    return meta, links
