"""Hostile input, each finding of the attack report as a test (issue 16): bodies, text the
database cannot hold, poisoned batches, idempotency, soft deletes, the smaller ones.

Real sockets and a real `serve` process are in test_hostile_server.py; Redis faults in
test_faults.py; the schema fuzzer in test_fuzz.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

OWNER, FAN, OTHER, ADMIN = 1, 2, 3, 9
MB = 1024 * 1024


async def live_stream(client: httpx.AsyncClient, auth: Any, **fields: Any) -> int:
    created = await client.post("/api/streams", json={"title": "x", **fields}, headers=auth(OWNER))
    assert created.status_code == 201, created.text
    stream_id = int(created.json()["data"]["id"])
    await client.post(f"/api/streams/{stream_id}/start", headers=auth(OWNER))
    return stream_id


class Body:
    """A request body streamed in chunks (no Content-Length), counting what was pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield b" " * self.chunk


# --- 1. bodies are limited while they stream in -----------------------------------------------


async def test_an_unsigned_pusher_api_body_is_refused_by_size_before_the_signature(
    client: httpx.AsyncClient,
) -> None:
    body = Body(250 * MB)
    answer = await client.post("/apps/1/events", content=body)
    assert answer.status_code == 413
    assert answer.json()["success"] is False and "too large" in answer.json()["message"]
    assert answer.headers["connection"] == "close"
    assert body.pulled < 200 * 1024  # Pusher's 10 KB data limit plus its envelope, not 250 MB


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    client: httpx.AsyncClient, auth: Any
) -> None:
    body = Body(250 * MB)
    answer = await client.post(
        "/api/streams/1/comments",
        content=body,
        headers={**auth(FAN), "Content-Length": str(250 * MB), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413 and answer.json()["success"] is False
    assert body.pulled <= 64 * 1024  # nothing but what the client pushed before the answer


async def test_json_bodies_stop_at_one_megabyte_even_with_a_valid_token(
    client: httpx.AsyncClient, auth: Any
) -> None:
    stream_id = await live_stream(client, auth)
    body = Body(250 * MB)
    answer = await client.post(
        f"/api/streams/{stream_id}/comments",
        content=body,
        headers={**auth(FAN), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert MB <= body.pulled < MB + 128 * 1024
    small = await client.post(
        f"/api/streams/{stream_id}/comments", json={"content": "hi"}, headers=auth(FAN)
    )
    assert small.status_code == 201


async def test_uploads_get_the_thumbnail_limit(client: httpx.AsyncClient, auth: Any) -> None:
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="thumbnail"; '
        'filename="t.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()

    async def form(size: int) -> AsyncIterator[bytes]:
        yield head
        for _ in range(size // (64 * 1024)):
            yield b"\xff" * (64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**auth(OWNER), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    # 2 MB is over the JSON limit but within the thumbnail's: the image itself is then judged
    judged = await client.post("/api/streams", content=form(2 * MB), headers=headers)
    assert judged.status_code == 422, judged.text
    assert "thumbnail" in judged.json()["errors"]
    huge = await client.post("/api/streams", content=form(20 * MB), headers=headers)
    assert huge.status_code == 413
