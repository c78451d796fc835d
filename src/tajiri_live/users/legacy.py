"""How the unmodified mobile client names its caller, route by route.

The shipped client sends no token. It puts the caller's id in the body (`user_id`) or the
query (`current_user_id`) of some calls, and nothing at all on others (start, end, pin...),
where only the stream's owner (or an invited co-host) would ever make the call. With
`TAJIRI_LEGACY_CLIENT_IDENTITY` on, a request *without* an Authorization header acts as the
user this table names. Anything not in the table (money, admin, wallets, moderation) still
needs a token. The risk is stated in docs/operations.md: anyone can claim any id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from starlette.requests import Request

_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


class Implied(Enum):
    """Who a call with no id field comes from."""

    OWNER = "owner"  # the stream's owner (the path's stream_id)
    INVITEE = "invitee"  # the co-host invitation's user (the path's cohost_id)


@dataclass(frozen=True)
class Rule:
    query: str | None = None  # a query parameter naming the caller
    body: str | None = None  # a body field naming the caller
    implied: Implied | None = None  # who it is when no field names anyone


STREAM = "/api/streams/{stream_id}"

# (method, route path) -> rule. The client's calls, from its livestream service.
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/streams"): Rule(query="current_user_id"),
    ("GET", STREAM): Rule(query="current_user_id"),
    ("POST", "/api/streams"): Rule(body="user_id"),
    ("PUT", STREAM): Rule(body="user_id", implied=Implied.OWNER),
    ("DELETE", STREAM): Rule(implied=Implied.OWNER),
    ("PATCH", f"{STREAM}/status"): Rule(body="user_id", implied=Implied.OWNER),
    ("POST", f"{STREAM}/start"): Rule(implied=Implied.OWNER),
    ("POST", f"{STREAM}/end"): Rule(implied=Implied.OWNER),
    ("POST", f"{STREAM}/join"): Rule(body="user_id"),
    ("POST", f"{STREAM}/leave"): Rule(body="user_id"),
    ("POST", f"{STREAM}/like"): Rule(body="user_id"),
    ("POST", f"{STREAM}/share"): Rule(body="user_id"),
    ("POST", f"{STREAM}/reactions"): Rule(body="user_id"),
    ("POST", f"{STREAM}/comments"): Rule(body="user_id"),
    ("POST", f"{STREAM}/comments/{{comment_id}}/pin"): Rule(implied=Implied.OWNER),
    # The body's user_id is the invitee, not the caller: the owner invites.
    ("POST", f"{STREAM}/cohosts"): Rule(implied=Implied.OWNER),
    ("PUT", f"{STREAM}/cohosts/{{cohost_id}}"): Rule(implied=Implied.INVITEE),
    ("DELETE", f"{STREAM}/cohosts/{{cohost_id}}"): Rule(implied=Implied.OWNER),
    ("GET", f"{STREAM}/viewers"): Rule(query="current_user_id", implied=Implied.OWNER),
    ("POST", f"{STREAM}/notify-followers"): Rule(implied=Implied.OWNER),
}

# Calls of the client that stay refused without a token, with the reason the client shows.
REFUSALS: dict[tuple[str, str], str] = {
    ("POST", f"{STREAM}/gifts"): (
        "Gifts are paid with coins: sending one needs a signed-in token "
        "(Authorization: Bearer <token>); a sender_id in the body is not enough."
    ),
    # Revenue and top gifters: money data, which a claimed id must not read (the client never
    # asks for it).
    ("GET", f"{STREAM}/analytics"): (
        "A stream's analytics show its revenue and gifters: reading them needs a signed-in "
        "token (Authorization: Bearer <token>); a current_user_id is not enough."
    ),
}

# The path's user id is the caller (the client reads its own notifications).
OWN_PATH_USER = frozenset(
    {
        ("GET", "/api/users/{user_id}/stream-notifications"),
        ("POST", "/api/users/{user_id}/stream-notifications/read-all"),
        ("POST", "/api/users/{user_id}/stream-notifications/{notification_id}/read"),
    }
)


def route_template(request: Request) -> str:
    """The matched route's full path template (`/api/streams/{stream_id}/start`).

    An included router's route knows only its own part of the path; the rest is the request
    path minus that part rendered with the request's path parameters."""
    template = str(getattr(request.scope.get("route"), "path", ""))
    params = request.path_params
    rendered = _PARAM.sub(lambda m: str(params.get(m[1], m[0])), template)
    path = request.url.path
    if not path.endswith(rendered):
        return template
    return path[: len(path) - len(rendered)] + template
