from collections.abc import Callable
from typing import Any

def write_slice(
    slots: list[Any], head: int, since: Callable[[int], tuple[bytes, int]]
) -> tuple[int, int, int]: ...
