"""The REST routers are matched in the order `API_ROUTERS` gives (hot paths first): no route
may be hidden by one matched before it."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.routing import compile_path

from tajiri_live.app import API_ROUTERS

PARAMETER = re.compile(r"{[^}]+}")


def _routes_in_matching_order() -> list[tuple[str, set[str], str]]:
    routes = []
    for router in API_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            routes.append((f"/api{route.path}", set(route.methods), route.name))
    return routes


def test_no_route_is_hidden_by_an_earlier_one() -> None:
    routes = _routes_in_matching_order()
    assert len(routes) > 50
    hidden = []
    for index, (path, methods, name) in enumerate(routes):
        concrete = PARAMETER.sub("1", path)  # /api/streams/gifts stays a literal
        for earlier_path, earlier_methods, earlier_name in routes[:index]:
            pattern = compile_path(earlier_path)[0]
            if methods & earlier_methods and pattern.match(concrete):
                hidden.append(f"{name} ({concrete}) answered by {earlier_name} ({earlier_path})")
    assert hidden == []


def test_a_literal_segment_wins_over_a_parameter() -> None:
    """What the order protects: the gift catalog before /streams/{id} (which would answer
    /api/streams/gifts with a 422 for a stream id that is no number)."""
    routes = _routes_in_matching_order()
    first = next(r for r in routes if compile_path(r[0])[0].match("/api/streams/gifts"))
    assert first[0] == "/api/streams/gifts"
