"""A Laravel-shaped main app database (users, personal_access_tokens) on PostgreSQL or MariaDB,
created as Laravel's migrations create it and written as Sanctum writes it."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

IN_CI = os.environ.get("CI") == "true"
# The main app's database servers; in CI the machine's own, always.
SERVERS = {
    "postgresql": os.environ.get("TAJIRI_TEST_MAINAPP_POSTGRES_URL")
    or os.environ.get("TAJIRI_TEST_DATABASE_URL")
    or ("postgresql+asyncpg://postgres@127.0.0.1:5432/test" if IN_CI else None),
    "mariadb": os.environ.get("TAJIRI_TEST_MAINAPP_MYSQL_URL")
    or ("mysql+asyncmy://root@127.0.0.1:3306/test" if IN_CI else None),
}

USER_MODEL = "App\\Models\\User"

DDL = {
    "postgresql": [
        """CREATE TABLE users (
            id bigserial PRIMARY KEY, first_name varchar(255), last_name varchar(255),
            username varchar(255), profile_photo_path varchar(2048), email varchar(255),
            password varchar(255), created_at timestamp(0) without time zone,
            updated_at timestamp(0) without time zone)""",
        """CREATE TABLE personal_access_tokens (
            id bigserial PRIMARY KEY, tokenable_type varchar(255) NOT NULL,
            tokenable_id bigint NOT NULL, name varchar(255) NOT NULL,
            token varchar(64) NOT NULL UNIQUE, abilities text,
            last_used_at timestamp(0) without time zone,
            expires_at timestamp(0) without time zone,
            created_at timestamp(0) without time zone,
            updated_at timestamp(0) without time zone)""",
        """CREATE INDEX personal_access_tokens_tokenable_type_tokenable_id_index
            ON personal_access_tokens (tokenable_type, tokenable_id)""",
    ],
    "mariadb": [
        """CREATE TABLE users (
            id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, first_name varchar(255) NULL,
            last_name varchar(255) NULL, username varchar(255) NULL,
            profile_photo_path varchar(2048) NULL, email varchar(255) NULL,
            password varchar(255) NULL, created_at timestamp NULL, updated_at timestamp NULL)
            DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci""",
        """CREATE TABLE personal_access_tokens (
            id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
            tokenable_type varchar(255) NOT NULL, tokenable_id bigint unsigned NOT NULL,
            name varchar(255) NOT NULL, token varchar(64) NOT NULL, abilities text NULL,
            last_used_at timestamp NULL, expires_at timestamp NULL, created_at timestamp NULL,
            updated_at timestamp NULL,
            UNIQUE KEY personal_access_tokens_token_unique (token),
            KEY personal_access_tokens_tokenable_type_tokenable_id_index
                (tokenable_type, tokenable_id))
            DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci""",
    ],
}


def server_url(kind: str) -> str:
    url = SERVERS[kind]
    if url is None:
        pytest.skip(
            f"set TAJIRI_TEST_MAINAPP_{'POSTGRES' if kind == 'postgresql' else 'MYSQL'}_URL "
            "to run the Sanctum tests on it"
        )
    return url


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0)


class MainAppDatabase:
    """A database of its own on the server, with the two tables; dropped by `drop()`."""

    def __init__(self, kind: str, server: str) -> None:
        self.kind = kind
        self.server = server
        self.name = f"tajiri_mainapp_{uuid.uuid4().hex[:10]}"
        self.url = make_url(server).set(database=self.name).render_as_string(hide_password=False)
        self._engine: AsyncEngine | None = None

    async def create(self) -> MainAppDatabase:
        admin = create_async_engine(self.server, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                await connection.execute(text(f"CREATE DATABASE {self._quoted()}"))
        finally:
            await admin.dispose()
        self._engine = create_async_engine(self.url)
        async with self._engine.begin() as connection:
            for statement in DDL[self.kind]:
                await connection.execute(text(statement))
        return self

    def _quoted(self) -> str:
        return f"`{self.name}`" if self.kind == "mariadb" else f'"{self.name}"'

    async def drop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        admin = create_async_engine(self.server, isolation_level="AUTOCOMMIT")
        try:
            async with admin.connect() as connection:
                force = " WITH (FORCE)" if self.kind == "postgresql" else ""
                await connection.execute(text(f"DROP DATABASE IF EXISTS {self._quoted()}{force}"))
        finally:
            await admin.dispose()

    async def execute(self, statement: str, **values: Any) -> Any:
        assert self._engine is not None
        async with self._engine.begin() as connection:
            return await connection.execute(text(statement), values)

    async def scalar(self, statement: str, **values: Any) -> Any:
        assert self._engine is not None
        async with self._engine.connect() as connection:
            return (await connection.execute(text(statement), values)).scalar()

    async def add_user(self, user_id: int, **profile: str | None) -> None:
        now = _naive_utc(datetime.now(UTC))
        await self.execute(
            "INSERT INTO users (id, first_name, last_name, username, profile_photo_path, "
            "email, created_at, updated_at) VALUES (:id, :first_name, :last_name, :username, "
            ":photo, :email, :now, :now)",
            id=user_id,
            first_name=profile.get("first_name"),
            last_name=profile.get("last_name"),
            username=profile.get("username"),
            photo=profile.get("profile_photo_path"),
            email=f"user{user_id}@example.com",
            now=now,
        )

    async def issue_token(
        self,
        user_id: int,
        *,
        model: str = USER_MODEL,
        abilities: str = '["*"]',
        expires_at: datetime | None = None,
        created_at: datetime | None = None,
    ) -> tuple[int, str]:
        """As `$user->createToken('app')`: the row keeps SHA-256 of the plaintext; the client
        gets `{id}|{plaintext}`. Returns (token id, what the client gets)."""
        plain = secrets.token_urlsafe(30)[:40]
        created = _naive_utc(created_at or datetime.now(UTC))
        await self.execute(
            "INSERT INTO personal_access_tokens (tokenable_type, tokenable_id, name, token, "
            "abilities, expires_at, created_at, updated_at) VALUES (:model, :user_id, 'app', "
            ":token, :abilities, :expires_at, :created, :created)",
            model=model,
            user_id=user_id,
            token=hashlib.sha256(plain.encode()).hexdigest(),
            abilities=abilities,
            expires_at=_naive_utc(expires_at) if expires_at else None,
            created=created,
        )
        token_id = int(
            await self.scalar(
                "SELECT id FROM personal_access_tokens WHERE token = :token",
                token=hashlib.sha256(plain.encode()).hexdigest(),
            )
        )
        return token_id, f"{token_id}|{plain}"
