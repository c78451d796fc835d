"""A fast stand-in for FCM HTTP v1 and Google's token endpoint, for the notification benchmark:
it accepts every message and counts them (`GET /count`). The tests use tests/fcm_fake.py,
which checks everything; this one only has to keep up.

    python bench/fcm_sink.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import uvicorn

accepted = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global accepted
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/token":
        body = {"access_token": "bench-token", "expires_in": 3600, "token_type": "Bearer"}
    elif path == "/count":
        body = {"accepted": accepted}
    else:
        accepted += 1
        body = {"name": f"projects/bench/messages/{accepted}"}
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
        lifespan="off", http="httptools", loop="uvloop",
    )  # fmt: skip
