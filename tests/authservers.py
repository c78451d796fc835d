"""Small local HTTP servers that speak what identity providers speak: a JWKS endpoint (as an
OIDC provider publishes its keys) and a Laravel-like `/api/user` for introspection."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from servers import free_port


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        headers = {"kid": kid if kid is not None else self.kid}
        return jwt.encode(claims, self.private, algorithm="RS256", headers=headers)


async def send_in_two(request: web.Request, body: bytes) -> web.StreamResponse:
    """A whole answer in two chunks 0.2 s apart, as a slow proxy delivers it."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    half = len(body) // 2
    await response.write(body[:half])
    await asyncio.sleep(0.2)
    await response.write(body[half:])
    await response.write_eof()
    return response


class LocalServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.hits = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class JwksServer(LocalServer):
    """Serves `keys` as a JWK set at /.well-known/jwks.json, or `garbage`, after `delay`."""

    def __init__(self, keys: list[SigningKey]) -> None:
        super().__init__()
        self.keys = keys
        self.garbage: bytes | None = None
        self.delay = 0.0
        self.chunked = False  # the answer in two writes, a moment apart

    async def start(self) -> JwksServer:  # type: ignore[override]
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._serve)
        await super().start(app)
        return self

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/.well-known/jwks.json"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.garbage is not None:
            return web.Response(body=self.garbage, content_type="application/json")
        body = json.dumps({"keys": [k.jwk() for k in self.keys]}).encode()
        if not self.chunked:
            return web.Response(body=body, content_type="application/json")
        return await send_in_two(request, body)


class IntrospectionServer(LocalServer):
    """`GET /api/user` with a bearer token: 200 and the user for known tokens, else 401."""

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, dict[str, Any]] = {}
        self.status: int | None = None  # force an answer (e.g. 500)
        self.chunked = False

    async def start(self) -> IntrospectionServer:  # type: ignore[override]
        app = web.Application()
        app.router.add_get("/api/user", self._serve)
        await super().start(app)
        return self

    @property
    def user_url(self) -> str:
        return f"{self.url}/api/user"

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.status is not None:
            return web.json_response({"message": "Server Error"}, status=self.status)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        user = self.users.get(token)
        if user is None:
            return web.json_response({"message": "Unauthenticated."}, status=401)
        if self.chunked:
            return await send_in_two(request, json.dumps(user).encode())
        return web.json_response(user)
