"""A local server that speaks FCM HTTP v1 and Google's OAuth2 token endpoint, as documented.

- `POST /token`: the service-account JWT bearer grant; the assertion must be RS256-signed by
  the test service account's key, for Google's token audience, with the FCM scope.
- `POST /v1/projects/{project}/messages:send`: needs a bearer token from `/token`; checks the
  message (a token, a notification with title and body, string-only data). Tokens starting
  with `dead-` answer 404 UNREGISTERED, `invalid-` 400 INVALID_ARGUMENT, `busy-` a 429
  QUOTA_EXCEEDED with Retry-After the first time; the rest are recorded and accepted.
- `hold_after(n)`: after n accepted messages, further requests wait until `release()`, and are
  then refused without being recorded (their sender may be gone): a crash mid-batch.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PROJECT = "tajiri-test"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
CLIENT_EMAIL = "push@tajiri-test.iam.gserviceaccount.com"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


def _error(status: int, code: str, message: str, fcm_code: str | None = None) -> JSONResponse:
    details = (
        [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
        if fcm_code
        else []
    )
    body = {"error": {"code": status, "message": message, "status": code, "details": details}}
    return JSONResponse(body, status_code=status)


@dataclass
class FakeFcm:
    port: int = 0
    delivered: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    held: int = 0
    tokens_issued: int = 0

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._access: set[str] = set()
        self._busy_seen: set[str] = set()
        self._hold_after: int | None = None
        self._released: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def service_account(self, directory: Path) -> Path:
        """The JSON key file a Firebase console would hand out, pointing at this server."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = directory / "service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "test-key-1",
                    "private_key": pem,
                    "client_email": CLIENT_EMAIL,
                    "client_id": "1234567890",
                    "token_uri": f"{self.url}/token",
                }
            )
        )
        return path

    # --- the two endpoints ---------------------------------------------------------------------

    async def _token(self, request: Request) -> JSONResponse:
        form = await request.form()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion")),
                self._key.public_key(),
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,  # what Google's endpoint checks, wherever it is
                issuer=CLIENT_EMAIL,
            )
        except jwt.PyJWTError as error:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": str(error)}, status_code=400
            )
        if SCOPE not in str(claims.get("scope", "")).split():
            return JSONResponse({"error": "invalid_scope"}, status_code=400)
        with self._lock:
            self.tokens_issued += 1
            token = f"ya29.test-{self.tokens_issued}"
            self._access.add(token)
        return JSONResponse({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    async def _send(self, request: Request) -> JSONResponse:
        with self._lock:
            self.requests += 1
        if request.path_params["project"] != PROJECT:
            return _error(403, "PERMISSION_DENIED", "Wrong project.", "SENDER_ID_MISMATCH")
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self._access:
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication.")
        try:
            message = (await request.json())["message"]
            token = message["token"]
            title, body = message["notification"]["title"], message["notification"]["body"]
            data = message.get("data", {})
            assert isinstance(token, str) and title and body
            assert all(isinstance(v, str) for v in data.values())
        except (ValueError, KeyError, TypeError, AssertionError):
            return _error(400, "INVALID_ARGUMENT", "Invalid message.")
        if token.startswith("dead-"):
            return _error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        if token.startswith("invalid-"):
            return _error(400, "INVALID_ARGUMENT", "The registration token is not valid.",
                          "INVALID_ARGUMENT")  # fmt: skip
        if token.startswith("busy-") and token not in self._busy_seen:
            self._busy_seen.add(token)
            response = _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED")
            response.headers["Retry-After"] = "1"
            return response
        if self._hold_after is not None and len(self.delivered) >= self._hold_after:
            assert self._released is not None
            with self._lock:
                self.held += 1
            await self._released.wait()
            return _error(503, "UNAVAILABLE", "The sender went away.")
        with self._lock:
            self.delivered.append(
                {"token": token, "title": title, "body": body, "data": data, "at": time.time()}
            )
            number = len(self.delivered)
        return JSONResponse({"name": f"projects/{PROJECT}/messages/{number}"})

    # --- control ---------------------------------------------------------------------------------

    def hold_after(self, count: int) -> None:
        self._hold_after = count

    def release(self) -> None:
        self._hold_after = None
        if self._loop is not None and self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    def start(self) -> FakeFcm:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._released = asyncio.Event()
            assert self._server is not None
            try:
                loop.run_until_complete(self._server.serve())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not (self._server.started or time.monotonic() > deadline):
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def tokens(self) -> list[str]:
        return [d["token"] for d in self.delivered]
