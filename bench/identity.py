"""Identity benchmark: what authenticating a request costs, per authenticator.

    .venv/bin/python bench/identity.py --write-docs \\
        --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        --mysql mysql+asyncmy://root@127.0.0.1:3306/test
    .venv/bin/python bench/identity.py --quick     # JWT and introspection only, a few calls

For each authenticator it measures, through the production chain (`Identity`): the first
sight of a token (the lookup: a signature check, a database round trip, an HTTP call) over
`--tokens` distinct tokens, and then the same tokens again from the cache, `--calls` times.
Sanctum runs on a Laravel-shaped database of its own on each server named (created and
dropped here), introspection against a local HTTP server, JWKS against a local key endpoint.
Last, a flood: `--flood` requests carrying `--bad` distinct bad tokens, and how many lookups
they cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the Laravel-shaped database and the local servers

from common import percentile, write_doc_block  # noqa: E402

from authservers import IntrospectionServer, JwksServer, SigningKey  # noqa: E402
from laravel import MainAppDatabase  # noqa: E402
from tajiri_live.core.auth.identity import (  # noqa: E402
    Identity,
    build_identity,
    build_token_codec,
)
from tajiri_live.core.errors import ApiError  # noqa: E402
from tajiri_live.core.settings import Settings  # noqa: E402

SECRET = "bench-secret-" + "a" * 40


def settings(**changes: Any) -> Settings:
    return Settings(var_dir=Path(tempfile.mkdtemp()), **{"jwt_secret": SECRET, **changes})


def identity_for(config: Settings) -> Identity:
    return build_identity(config, build_token_codec(config))


async def timed(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    spent = []
    for call in calls:
        started = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


async def measure(name: str, identity: Identity, tokens: list[str], calls: int) -> dict[str, Any]:
    first = await timed([lambda t=t: identity.authenticate(t) for t in tokens])
    again = await timed([lambda t=tokens[n % len(tokens)]: identity.authenticate(t)
                         for n in range(calls)])  # fmt: skip
    await identity.close()
    return {
        "name": name,
        "first_p50": percentile(first, 0.5),
        "first_p99": percentile(first, 0.99),
        "cached_p50": percentile(again, 0.5),
        "cached_p99": percentile(again, 0.99),
    }


async def sanctum_rows(kind: str, server: str, count: int, calls: int) -> dict[str, Any]:
    database = await MainAppDatabase(kind, server).create()
    try:
        tokens = []
        for user_id in range(1, count + 1):
            await database.add_user(user_id, first_name=f"User{user_id}")
            tokens.append((await database.issue_token(user_id))[1])
        identity = identity_for(settings(auth_sanctum_database_url=database.url))
        return await measure(f"Sanctum on {kind}", identity, tokens, calls)
    finally:
        await database.drop()


async def flood_of_bad_tokens(args: argparse.Namespace) -> dict[str, Any]:
    """Many requests, few distinct bad tokens: against Sanctum's database when a server is
    named (the lookups are its round trips), else against introspection (its HTTP calls)."""
    bad = [f"{n}|{'x' * 40}" for n in range(1, args.bad + 1)]
    database = None
    account = None
    if args.postgres:
        database = await MainAppDatabase("postgresql", args.postgres).create()
        flooded = identity_for(settings(auth_sanctum_database_url=database.url))
        where = "Sanctum on postgresql"
    else:
        account = await IntrospectionServer().start()
        flooded = identity_for(settings(auth_introspection_url=account.user_url))
        where = "introspection"

    async def attempt(token: str) -> None:
        with contextlib.suppress(ApiError):
            await flooded.authenticate(token)

    try:
        for start in range(0, args.flood, 500):
            await asyncio.gather(*(attempt(bad[n % len(bad)]) for n in range(start, start + 500)))
        lookups = flooded.sanctum.lookups if flooded.sanctum else account.hits  # type: ignore[union-attr]
    finally:
        await flooded.close()
        if database is not None:
            await database.drop()
        if account is not None:
            await account.stop()
    return {"requests": args.flood, "distinct": len(bad), "lookups": lookups, "where": where}


async def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = []
    plain = identity_for(settings())
    assert plain.jwt is not None
    hs256 = [plain.jwt.encode(n) for n in range(1, args.tokens + 1)]
    rows.append(await measure("JWT, HS256 secret", plain, hs256, args.calls))

    key = SigningKey("bench")
    provider = await JwksServer([key]).start()
    account = await IntrospectionServer().start()
    try:
        jwks = identity_for(settings(jwt_secret=None, jwt_jwks_url=provider.jwks_url))
        rs256 = [key.sign({"sub": str(n), "exp": int(time.time()) + 3600})
                 for n in range(1, args.tokens + 1)]  # fmt: skip
        rows.append(await measure("JWT, RS256 from JWKS", jwks, rs256, args.calls))
        opaque = [f"opaque-{n}" for n in range(1, args.tokens + 1)]
        account.users.update({t: {"id": n} for n, t in enumerate(opaque, 1)})
        introspected = identity_for(settings(auth_introspection_url=account.user_url))
        rows.append(await measure("introspection (local HTTP)", introspected, opaque, args.calls))
    finally:
        await provider.stop()
        await account.stop()
    for kind, server in (("postgresql", args.postgres), ("mariadb", args.mysql)):
        if server:
            rows.append(await sanctum_rows(kind, server, args.tokens, args.calls))

    flood = await flood_of_bad_tokens(args)
    return rows, flood


def report(rows: list[dict[str, Any]], flood: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"{args.tokens} distinct tokens per authenticator, then {args.calls:,} calls from the "
        "cache (the production `Identity`, in process).\n",
        "| authenticator | first sight p50 ms | p99 ms | cached p50 ms | cached p99 ms |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['first_p50']:.3f} | {r['first_p99']:.3f} | "
            f"{r['cached_p50']:.4f} | {r['cached_p99']:.4f} |"
        )
    lines.append(
        f"\nFlood ({flood['where']}): {flood['requests']:,} requests with {flood['distinct']} "
        f"distinct bad tokens cost **{flood['lookups']}** lookups.\n"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--flood", type=int, default=10_000)
    parser.add_argument("--bad", type=int, default=100)
    parser.add_argument("--postgres", help="a PostgreSQL server for the Sanctum rows")
    parser.add_argument("--mysql", help="a MySQL/MariaDB server for the Sanctum rows")
    parser.add_argument("--quick", action="store_true", help="a small smoke (CI)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.calls, args.flood, args.bad = 20, 2_000, 1_000, 10
    rows, flood = asyncio.run(run(args))
    text = report(rows, flood, args)
    print(text)
    if flood["lookups"] > flood["distinct"]:
        raise SystemExit("the flood cost more than one lookup per distinct token")
    if args.write_docs:
        servers = "".join(f", {k} server" for k in ("postgres", "mysql") if getattr(args, k))
        write_doc_block(
            "identity",
            f"bench/identity.py --tokens {args.tokens} --calls {args.calls}"
            f" --flood {args.flood} --bad {args.bad}",
            text,
            where=servers,
        )


if __name__ == "__main__":
    main()
