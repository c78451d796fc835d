"""Reading an identity provider's answer whole, but no more than a limit."""

from __future__ import annotations

import aiohttp


class TooLarge(ValueError):
    pass


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body to its end (however many chunks it comes in), refusing one over `limit`."""
    if response.content_length is not None and response.content_length > limit:
        raise TooLarge(f"{response.content_length} bytes")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"over {limit} bytes")
    return bytes(body)
