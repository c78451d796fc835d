"""The Pusher protocol with the real clients: pusher-js and Laravel Echo (Node), the official
`pusher` server SDK (Python), against a real `serve` process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pusher
import pytest

from conftest import TEST_SECRET
from jsclient import JsClient
from servers import ServerProcess
from tajiri_live.broadcasting.apps import derived_secret
from tajiri_live.core.auth import TokenCodec
from tajiri_live.core.settings import Settings
from tajiri_live.realtime.pusher import PusherApp, sign_request
from wsclient import Viewer

CREATOR, FAN, OTHER, ADMIN = 1, 2, 3, 9
APP_ID, APP_KEY = "1", "tajiri-live"
SECOND = PusherApp(id="42", key="second-app", secret="s" * 32, event_names="mobile")


@pytest.fixture(scope="module")
def tokens() -> TokenCodec:
    return TokenCodec(Settings(jwt_secret=TEST_SECRET))


@pytest.fixture(scope="module")
def app_secret() -> str:
    return derived_secret(Settings(jwt_secret=TEST_SECRET))


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    extra = orjson.dumps(
        [{"id": SECOND.id, "key": SECOND.key, "secret": SECOND.secret, "event_names": "mobile"}]
    ).decode()
    process = ServerProcess(
        tmp_path, database_url, TAJIRI_PUSHER_EXTRA_APPS=extra, TAJIRI_PUSHER_CLIENT_EVENT_LIMIT="5"
    ).start()
    yield process
    process.stop()


@pytest.fixture
async def api(server: ServerProcess, tokens: TokenCodec) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(base_url=server.url) as client:

        def as_user(user_id: int, **claims: Any) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens.encode(user_id, **claims)}"}

        client.as_user = as_user  # type: ignore[attr-defined]
        yield client


def sdk(server: ServerProcess, app_secret: str) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=APP_ID, key=APP_KEY, secret=app_secret, host="127.0.0.1", port=server.port, ssl=False
    )


async def new_stream(api: Any, **fields: Any) -> int:
    response = await api.post(
        "/api/streams", json={"title": "Live", **fields}, headers=api.as_user(CREATOR)
    )
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


async def test_pusher_js_follows_a_stream_like_the_plain_protocol(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await new_stream(api)
    shown = (await api.get(f"/api/streams/{stream_id}")).json()
    client = await JsClient.start(
        server, subscribe=[{"channel": f"stream.{stream_id}"}, {"channel": "streams"}]
    )
    plain = await Viewer.connect(f"{server.ws}/streams/{stream_id}?token={tokens.encode(OTHER)}")
    try:
        connected = await client.wait_for(lambda line: line["type"] == "connected")
        assert connected["socket_id"].count(".") == 1
        await client.subscribed(f"stream.{stream_id}")
        await client.subscribed("streams")

        await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
        status = await client.wait_for(
            lambda line: (
                line.get("event") == "status_changed"
                and line["channel"] == "streams"
                and line["data"]["status"] == "live"
            )
        )
        assert status["data"]["status"] == "live" and "playback_url" in status["data"]
        # The Echo class name rides beside the mobile name (the default set is "both").
        await client.wait_for(lambda line: line.get("event") == "App\\Events\\StreamStatusChanged")

        posted = await api.post(
            f"/api/streams/{stream_id}/comments",
            json={"content": "habari za jioni"},
            headers=api.as_user(FAN),
        )
        assert posted.status_code == 201, posted.text
        comment_id = posted.json()["data"]["id"]
        heard = await client.wait_for(lambda line: line.get("event") == "new_comment")
        assert heard["channel"] == f"stream.{stream_id}"
        assert heard["data"]["id"] == comment_id  # `data` was a JSON string, decoded by pusher-js
        assert heard["data"]["content"] == "habari za jioni"
        on_plain = await plain.wait_for(lambda e: e["event"] == "new_comment")
        assert on_plain["data"] == heard["data"]  # one event, two protocols, same payload

        credited = await api.post(
            "/api/wallet/credit",
            json={"user_id": FAN, "amount": 500},
            headers=api.as_user(ADMIN, admin=True),
        )
        assert credited.status_code == 200, credited.text
        catalog = (await api.get("/api/streams/gifts")).json()["data"]
        sent = await api.post(
            f"/api/streams/{stream_id}/gifts",
            json={"gift_id": catalog[0]["id"], "quantity": 2},
            headers=api.as_user(FAN),
        )
        assert sent.status_code == 201, sent.text
        gift = await client.wait_for(lambda line: line.get("event") == "gift_sent")
        assert gift["data"]["quantity"] == 2 and gift["data"]["sender"]["id"] == FAN
        echoed = await client.wait_for(
            lambda line: line.get("event") == "App\\Events\\GiftReceived"
        )
        assert echoed["data"] == gift["data"]

        # The Pusher subscriber counts as a viewer, like the plain socket: two in all.
        counts = await client.wait_for(
            lambda line: (
                line.get("event") == "viewer_count_updated" and line["data"]["current_viewers"] == 2
            )
        )
        assert counts["data"]["stream_id"] == stream_id
        assert counts["data"]["viewers_count"] == 2  # the grid's field, on this path too
        assert shown["data"]["id"] == stream_id
    finally:
        await client.close()
        await plain.close()


async def test_the_websocket_object_points_at_the_pusher_endpoint(
    tmp_path: Path, database_url: str, tokens: TokenCodec
) -> None:
    server = ServerProcess(tmp_path, database_url, TAJIRI_WEBSOCKET_PROTOCOL="pusher").start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as api:
            headers = {"Authorization": f"Bearer {tokens.encode(CREATOR)}"}
            for privacy, channel in (("public", "stream.{}"), ("private", "private-stream.{}")):
                created = await api.post(
                    "/api/streams", json={"title": "x", "privacy": privacy}, headers=headers
                )
                stream_id = created.json()["data"]["id"]
                await api.post(f"/api/streams/{stream_id}/start", headers=headers)
                shown = (await api.get(f"/api/streams/{stream_id}", headers=headers)).json()
                assert shown["websocket"] == {
                    "url": f"{server.ws}/app/{APP_KEY}",
                    "channel": channel.format(stream_id),
                    "global_channel": "streams",
                    "protocol": "pusher",
                }
    finally:
        server.stop()


async def test_laravel_echo_private_and_presence_channels(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    hidden = await new_stream(api, privacy="private")  # the owner (and co-hosts) only
    public = await new_stream(api)
    listen = ["NewStreamComment", "StreamStatusChanged", "StreamEnded", "ViewerCountUpdated"]
    owner = await JsClient.start(
        server,
        mode="echo",
        token=tokens.encode(CREATOR, first_name="Amani"),
        subscribe=[
            {"channel": f"stream.{hidden}", "kind": "private", "events": listen},
            {"channel": f"stream.{public}", "kind": "presence", "events": []},
        ],
    )
    outsider = await JsClient.start(
        server,
        mode="echo",
        token=tokens.encode(OTHER),
        subscribe=[{"channel": f"stream.{hidden}", "kind": "private", "events": listen}],
    )
    fan: JsClient | None = None
    try:
        await owner.subscribed(f"stream.{hidden}")
        here = await owner.wait_for(lambda line: line["type"] == "here")
        assert [m["id"] for m in here["members"]] == [CREATOR]
        assert here["members"][0]["first_name"] == "Amani"  # user_info from the profile
        refused = await outsider.wait_for(lambda line: line["type"] == "subscription_error")
        assert refused["error"]["status"] == 403  # the auth endpoint said no

        fan = await JsClient.start(
            server,
            mode="echo",
            token=tokens.encode(FAN, first_name="Baraka"),
            subscribe=[{"channel": f"stream.{public}", "kind": "presence", "events": []}],
        )
        joining = await owner.wait_for(lambda line: line["type"] == "joining")
        assert joining["member"]["id"] == FAN and joining["member"]["first_name"] == "Baraka"
        fan_here = await fan.wait_for(lambda line: line["type"] == "here")
        assert sorted(m["id"] for m in fan_here["members"]) == [CREATOR, FAN]
        assert not [line for line in fan.lines if line["type"] == "joining"]  # not told of itself
        # On the presence channel the owner is known, and never counted: one viewer, the fan.
        for _ in range(50):
            check = (await api.get(f"/api/streams/{public}/check")).json()
            if check["current_viewers"]:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.6)  # three count periods more
        assert (await api.get(f"/api/streams/{public}/check")).json()["current_viewers"] == 1

        await api.post(f"/api/streams/{hidden}/start", headers=api.as_user(CREATOR))
        status = await owner.wait_for(
            lambda line: (
                line.get("event") == "StreamStatusChanged" and line["data"]["status"] == "live"
            )
        )
        assert status["data"]["stream_id"] == hidden
        await api.post(
            f"/api/streams/{hidden}/comments",
            json={"content": "karibu"},
            headers=api.as_user(CREATOR),
        )
        comment = await owner.wait_for(lambda line: line.get("event") == "NewStreamComment")
        assert comment["data"]["content"] == "karibu"
        await owner.wait_for(lambda line: line.get("event") == "ViewerCountUpdated")

        await fan.close()
        leaving = await owner.wait_for(lambda line: line["type"] == "leaving")
        assert leaving["member"]["id"] == FAN

        await api.post(f"/api/streams/{hidden}/end", headers=api.as_user(CREATOR))
        ended = await owner.wait_for(lambda line: line.get("event") == "StreamEnded", within=15)
        assert ended["data"]["status"] == "ended"
        assert not outsider.events("NewStreamComment")
    finally:
        for client in (owner, outsider, fan):
            if client is not None:
                await client.close()


async def test_the_official_server_sdk_triggers_and_reads_channels(
    server: ServerProcess, api: Any, tokens: TokenCodec, app_secret: str
) -> None:
    stream_id = await new_stream(api)
    first = await JsClient.start(
        server,
        token=tokens.encode(FAN),
        subscribe=[{"channel": "orders"}, {"channel": f"presence-stream.{stream_id}"}],
    )
    second = await JsClient.start(server, subscribe=[{"channel": "orders"}])
    try:
        await first.subscribed("orders")
        await first.subscribed(f"presence-stream.{stream_id}")
        await second.subscribed("orders")
        client = sdk(server, app_secret)

        assert client.trigger("orders", "order-shipped", {"order": 7}) == {}
        for listener in (first, second):
            heard = await listener.wait_for(lambda line: line.get("event") == "order-shipped")
            assert heard["data"] == {"order": 7}

        # `socket_id` excludes the sender (Laravel's toOthers()).
        socket_id = (await first.wait_for(lambda line: line["type"] == "connected"))["socket_id"]
        client.trigger("orders", "order-cancelled", {"order": 8}, socket_id=socket_id)
        client.trigger_batch([{"channel": "orders", "name": "batched", "data": {"n": 1}}])
        await second.wait_for(lambda line: line.get("event") == "order-cancelled")
        await first.wait_for(lambda line: line.get("event") == "batched")
        assert not first.events("order-cancelled")

        channels = client.channels_info(prefix_filter="presence-", attributes=["user_count"])
        assert channels == {"channels": {f"presence-stream.{stream_id}": {"user_count": 1}}}
        assert set(client.channels_info()["channels"]) == {"orders", f"presence-stream.{stream_id}"}
        info = client.channel_info("orders", ["subscription_count"])
        assert info == {"occupied": True, "subscription_count": 2}
        assert client.channel_info("nobody-here") == {"occupied": False}
        users = client.users_info(f"presence-stream.{stream_id}")
        assert users == {"users": [{"id": str(FAN)}]}
    finally:
        await first.close()
        await second.close()


async def test_bad_stale_or_foreign_signatures_are_refused(
    server: ServerProcess, app_secret: str
) -> None:
    app = PusherApp(id=APP_ID, key=APP_KEY, secret=app_secret)
    body = orjson.dumps({"name": "e", "channel": "c", "data": "{}"})
    path = f"/apps/{APP_ID}/events"
    async with httpx.AsyncClient(base_url=server.url) as http:

        async def post(query: dict[str, str], payload: bytes = body) -> httpx.Response:
            return await http.post(
                path, params=query, content=payload, headers={"Content-Type": "application/json"}
            )

        good = sign_request(app, "POST", path, {}, body, time.time())
        assert (await post(good)).status_code == 200
        tampered = {**good, "auth_signature": "0" * 64}
        assert (await post(tampered)).status_code == 401
        assert (await post(good, body.replace(b'"e"', b'"f"'))).status_code == 401  # body_md5
        stale = sign_request(app, "POST", path, {}, body, time.time() - 601)
        refused = await post(stale)
        assert refused.status_code == 401 and "expired" in refused.json()["message"].lower()
        wrong_secret = PusherApp(id=APP_ID, key=APP_KEY, secret="x" * 40)
        assert (
            await post(sign_request(wrong_secret, "POST", path, {}, body, time.time()))
        ).status_code == 401
        other_app = sign_request(SECOND, "POST", path, {}, body, time.time())
        assert (await post(other_app)).status_code == 401  # app 2's key on app 1
        unsigned = await http.get(f"/apps/{APP_ID}/channels")
        assert unsigned.status_code == 401
        bad_body = orjson.dumps({"name": "e", "channels": ["bad name!"], "data": "{}"})
        invalid = await post(sign_request(app, "POST", path, {}, bad_body, time.time()), bad_body)
        assert invalid.status_code == 400
        assert "channels.0" in invalid.json()["errors"]


async def test_client_events_are_relayed_to_others_and_rate_limited(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await new_stream(api)
    channel = f"private-stream.{stream_id}"
    sender = await JsClient.start(
        server, token=tokens.encode(FAN), subscribe=[{"channel": channel}]
    )
    receiver = await JsClient.start(
        server, token=tokens.encode(OTHER), subscribe=[{"channel": channel}]
    )
    try:
        await sender.subscribed(channel)
        await receiver.subscribed(channel)
        await sender.send(cmd="trigger", channel=channel, event="client-typing", data={"who": FAN})
        heard = await receiver.wait_for(lambda line: line.get("event") == "client-typing")
        assert heard["data"] == {"who": FAN}
        for n in range(8):  # the limit here is 5 a second
            await sender.send(cmd="trigger", channel=channel, event="client-tap", data={"n": n})
        limited = await sender.wait_for(lambda line: line["type"] == "connection_error")
        assert limited["error"]["code"] == 4301
        await receiver.wait_for(lambda line: len(receiver.events("client-tap")) >= 4)
        await sender.send(cmd="trigger", channel="streams", event="client-x", data={})
        assert not sender.events("client-typing")  # never echoed to the sender
        assert sender.process.returncode is None  # rate limits never close the connection
        assert len(receiver.events("client-tap")) <= 5
    finally:
        await sender.close()
        await receiver.close()


async def test_unknown_app_keys_and_a_second_app(
    server: ServerProcess, api: Any, tokens: TokenCodec
) -> None:
    stream_id = await new_stream(api)
    unknown = await JsClient.start(server, key="no-such-app", subscribe=[])
    second = await JsClient.start(
        server,
        key=SECOND.key,
        subscribe=[{"channel": "orders"}, {"channel": f"stream.{stream_id}"}],
    )
    first_app = await JsClient.start(server, subscribe=[{"channel": "orders"}])
    try:
        refused = await unknown.wait_for(lambda line: line["type"] == "connection_error")
        assert refused["error"]["code"] == 4001
        await second.subscribed("orders")
        await first_app.subscribed("orders")
        await second.subscribed(f"stream.{stream_id}")
        second_sdk = pusher.Pusher(
            app_id=SECOND.id,
            key=SECOND.key,
            secret=SECOND.secret,
            host="127.0.0.1",
            port=server.port,
            ssl=False,
        )
        second_sdk.trigger("orders", "only-app-42", {})
        await second.wait_for(lambda line: line.get("event") == "only-app-42")
        # Domain events reach every app, under that app's names (app 42: mobile names only).
        await api.post(f"/api/streams/{stream_id}/start", headers=api.as_user(CREATOR))
        await second.wait_for(lambda line: line.get("event") == "status_changed")
        assert not [line for line in second.lines if "App\\Events" in str(line.get("event"))]
        assert not first_app.events("only-app-42")  # channels are per app
    finally:
        for client in (unknown, second, first_app):
            await client.close()


async def test_the_mobile_clients_messages_on_the_pusher_path_never_get_pusher_errors(
    server: ServerProcess, api: Any
) -> None:
    """The mobile client's Pusher path: a bare WebSocket, `pusher:subscribe`, then its plain
    `ping` every 30 s (and any action it sends). A `pusher:error` is a dead connection to it."""
    stream_id = await new_stream(api)
    client = await Viewer.connect(f"{server.ws}/app/{APP_KEY}?protocol=7&client=dart")
    try:
        await client.wait_for(lambda e: e["event"] == "pusher:connection_established")
        await client.send("pusher:subscribe", {"channel": f"stream.{stream_id}"})
        await client.wait_for(lambda e: e["event"] == "pusher_internal:subscription_succeeded")
        await client.send("ping", {"timestamp": "2026-11-29T10:00:00.000"})
        pong = await client.wait_for(lambda e: e["event"] == "pong")
        # As the client decodes it: `data` is a JSON string holding the plain pong's data.
        assert orjson.loads(pong["data"]) == {"timestamp": "2026-11-29T10:00:00.000"}
        # An action the plain socket serves is pointed there; a name nobody serves is unknown.
        await client.send("reaction", {"reaction_type": "fire"})
        refused = await client.wait_for(lambda e: e["event"] == "error")
        assert orjson.loads(refused["data"])["code"] == "unsupported"
        await client.send("no_such_action", {})
        unknown = await client.wait_for(
            lambda e: e["event"] == "error" and "no_such_action" in e["data"]
        )
        assert orjson.loads(unknown["data"])["code"] == "unknown_event"
        await client.send("ping", {"timestamp": 2})
        await client.wait_for(lambda e: e["event"] == "pong" and '"timestamp":2' in e["data"])
        assert [e for e in client.events if e["event"] == "pusher:error"] == []
        await client.send("pusher:bogus", {})  # the protocol's own namespace is still policed
        await client.wait_for(lambda e: e["event"] == "pusher:error")
        assert client.connection.close_code is None  # still connected
    finally:
        await client.close()
