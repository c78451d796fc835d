"""The body limit as a pure ASGI layer: each way a body can arrive reaches the application
whole and in order, or is refused before the application runs."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from tajiri_live.core.bodylimit import BodyLimitMiddleware, BodyLimits

LIMIT = 100


class Application:
    """Reads the whole body the way Starlette does, and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(
    headers: dict[str, str], messages: list[Message], *, body_timeout: float = 5.0
) -> tuple[int, Application, int]:
    """The status answered, the application, and how many messages were received."""
    application = Application()
    layer = BodyLimitMiddleware(application, BodyLimits(LIMIT), timeout=body_timeout)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/streams/1/comments",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    queue = list(messages)
    received = 0

    async def receive() -> Message:
        nonlocal received
        if not queue:
            await asyncio.sleep(3600)  # a client that sends nothing more
        received += 1
        return queue.pop(0)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(layer(scope, receive, send), 10)  # a broken replay fails, not hangs
    return int(sent[0]["status"]), application, received


def body(chunk: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": chunk, "more_body": more}


async def test_a_request_without_a_body_passes_straight_through() -> None:
    status, application, received = await call({}, [body(b"")])
    assert status == 200 and application.bodies == [b""] and received == 1


async def test_a_body_in_one_message_reaches_the_application_as_it_came() -> None:
    data = b'{"content": "Hongera"}'
    status, application, _ = await call({"content-length": str(len(data))}, [body(data)])
    assert status == 200 and application.bodies == [data]


async def test_a_body_in_several_messages_is_gathered_in_order() -> None:
    parts = [b'{"content": ', b'"Hon', b'gera"}']
    messages = [body(part, more=i < len(parts) - 1) for i, part in enumerate(parts)]
    status, application, _ = await call({"transfer-encoding": "chunked"}, messages)
    assert status == 200 and application.bodies == [b"".join(parts)]


async def test_a_body_over_the_limit_in_its_first_message_never_reaches_the_application() -> None:
    status, application, _ = await call({"transfer-encoding": "chunked"}, [body(b"x" * 101)])
    assert status == 413 and application.bodies == []


async def test_a_body_that_passes_the_limit_later_is_refused_unread() -> None:
    messages = [body(b"x" * 60, more=True), body(b"x" * 60, more=True), body(b"x", more=False)]
    status, application, received = await call({"transfer-encoding": "chunked"}, messages)
    assert status == 413 and application.bodies == [] and received == 2


async def test_a_body_that_stops_arriving_is_a_408_within_the_timeout() -> None:
    for messages in ([], [body(b"x" * 10, more=True)]):  # nothing at all, or a first part
        status, application, _ = await call({"content-length": "50"}, messages, body_timeout=0.2)
        assert status == 408 and application.bodies == []


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    status, application, received = await call({"content-length": "101"}, [body(b"x" * 101)])
    assert status == 413 and application.bodies == [] and received == 0
