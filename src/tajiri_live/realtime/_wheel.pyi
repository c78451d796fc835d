from collections.abc import Callable

class Wire:
    fd: int
    queued: bool
    def __init__(
        self, write: Callable[[bytes], object], buffered: Callable[[], int], fd: int = -1
    ) -> None: ...
    def send(self, data: bytes) -> None: ...
    def forget(self) -> None: ...

class Slot:
    seq: int
    alive: bool
    wire: Wire
    def __init__(self, wire: Wire, seq: int) -> None: ...

def write_slice(
    slots: list[Slot], head: int, since: Callable[[int], tuple[bytes, int]]
) -> tuple[int, int, int]: ...
