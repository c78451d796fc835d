"""Super chats on real sockets: the client's `send_super_chat` replayed as
websocket_service.dart sends it (a double amount), `super_chat_sent` parsed cast for cast by
every viewer on the plain and the Pusher path, refusals as `error` events with nothing paid."""

from __future__ import annotations

import json
from typing import Any

import test_live_sockets as live
from dartclient import Parsed, parse_pusher
from servers import ServerProcess
from tajiri_live.core.auth import TokenCodec
from wsclient import Viewer

OWNER, FAN, OTHER, ADMIN = 1, 3, 4, 9

server = live.server
tokens = live.tokens
api = live.api


def chats(viewer: Viewer, *, pusher: bool) -> list[Parsed]:
    """The `super_chat_sent` frames as the client parses them (a cast failure fails)."""
    if not pusher:
        return live.parsed(viewer, "super_chat_sent")
    frames = (parse_pusher(json.dumps(e)) for e in viewer.events)
    return [p for p in frames if p is not None and p.event == "super_chat_sent"]


async def wallet_balance(api: Any, user: int) -> int:
    answer = await api.get("/wallet", headers=api.as_user(user))
    return int(answer.json()["data"]["balance"])


async def test_the_client_sends_a_super_chat_and_every_viewer_parses_it(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await live.live_stream(api)
    owner = await live.connect(server, tokens, stream_id, OWNER)
    fan = await live.connect(server, tokens, stream_id, FAN)
    anonymous = await live.connect(server, tokens, stream_id, None)
    pusher = await Viewer.connect(f"{server.ws}/app/tajiri-live?protocol=7")
    await pusher.send("pusher:subscribe", {"channel": f"stream.{stream_id}"})
    await pusher.wait_for(lambda e: e["event"] == "pusher_internal:subscription_succeeded")
    credited = await api.post(
        "/wallet/credit",
        json={"user_id": FAN, "amount": 20_000},
        headers=api.as_user(ADMIN, admin=True),
    )
    assert credited.status_code == 200, credited.text

    # sendSuperChat(message, amount): {'message': ..., 'amount': <double>}
    await fan.send("send_super_chat", {"message": "Big up from Mwanza!", "amount": 10000.0})
    for viewer in (owner, fan, anonymous, pusher):
        await viewer.wait_for(lambda e: e["event"] == "super_chat_sent")
    for viewer, pusher_path in ((owner, False), (fan, False), (anonymous, False), (pusher, True)):
        (chat,) = chats(viewer, pusher=pusher_path)
        assert chat.value == {
            "user_id": FAN,
            "username": f"u{FAN}",
            "message": "Big up from Mwanza!",
            "amount": 10000.0,
            "tier": "high",
            "duration": 15,
        }
    assert await wallet_balance(api, FAN) == 10_000
    assert await wallet_balance(api, OWNER) == 7_000

    # A late joiner's catch-up list has it, pinned, while it is on screen.
    comments = (await api.get(f"/streams/{stream_id}/comments")).json()["data"]
    assert [(c["content"], c["is_pinned"]) for c in comments] == [("Big up from Mwanza!", True)]

    async def refused(data: dict[str, Any]) -> dict[str, Any]:
        before = len([e for e in fan.events if e["event"] == "error"])
        await fan.send("send_super_chat", data)
        await fan.wait_for(
            lambda e: (
                e["event"] == "error"
                and len([x for x in fan.events if x["event"] == "error"]) > before
            )
        )
        error: dict[str, Any] = [e for e in fan.events if e["event"] == "error"][-1]["data"]
        assert error["event"] == "send_super_chat" and error["message"]
        return error

    assert (await refused({"message": "Kidogo", "amount": 500.0}))["code"] == "invalid"
    assert (await refused({"message": "Hasi", "amount": -1000.0}))["code"] == "invalid"
    assert (await refused({"message": "Kubwa", "amount": 1e308}))["code"] == "invalid"
    assert (await refused({"message": "x" * 10_240, "amount": 1000.0}))["code"] == "invalid"
    short = await refused({"message": "Ghali", "amount": 50_000.0})
    assert short["code"] == "payment_required" and short["balance"] == 10_000
    own = await live.connect(server, tokens, stream_id, OWNER)
    before = len(own.events)
    await own.send("send_super_chat", {"message": "Mimi", "amount": 1000.0})
    mine = await own.wait_for(lambda e: e["event"] == "error" and own.events.index(e) >= before)
    assert mine["data"]["code"] == "forbidden" and "own stream" in mine["data"]["message"]
    await anonymous.send("send_super_chat", {"message": "Nani?", "amount": 1000.0})
    denied = await anonymous.wait_for(lambda e: e["event"] == "error")
    assert denied["data"]["code"] == "unauthenticated"

    await fan.send("ping", {"timestamp": 1})
    await fan.wait_for(lambda e: e["event"] == "pong")  # the socket stayed open
    assert len([e for e in owner.events if e["event"] == "super_chat_sent"]) == 1
    assert await wallet_balance(api, FAN) == 10_000  # nothing paid for the refusals
    for viewer in (owner, fan, anonymous, pusher, own):
        assert json.dumps(viewer.events)
        await viewer.close()
