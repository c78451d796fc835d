"""The fan-out hub's rules: coalescing, lanes, sampling, slow consumers."""

from __future__ import annotations

import asyncio

import orjson

from tajiri_live.realtime.encoders import PlainEncoder
from tajiri_live.realtime.events import GIFT_SENT, NEW_COMMENT, VIEWER_COUNT_UPDATED, Event
from tajiri_live.realtime.hub import Hub, HubSettings


class RecordingTransport:
    """A transport that keeps what it is given (the hub's only needs: write, buffer size)."""

    def __init__(self, buffered: int = 0) -> None:
        self.writes: list[bytes] = []
        self.buffered = buffered

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered


class Socket:
    def __init__(self, user_id: int | None = None, buffered: int = 0) -> None:
        self.transport = RecordingTransport(buffered)
        self.own: list[bytes] = []
        self.user_id = user_id
        self.socket_id = f"{id(self)}.1"
        self.closed_slow = False

    def close_slow(self) -> None:
        self.closed_slow = True

    def events(self) -> list[dict[str, object]]:
        # Server frames are unmasked; decode them with a tolerant reader.
        out: list[dict[str, object]] = []
        for chunk in self.transport.writes:
            offset = 0
            while offset < len(chunk):
                length = chunk[offset + 1] & 0x7F
                header = 2
                if length == 126:
                    length = int.from_bytes(chunk[offset + 2 : offset + 4], "big")
                    header = 4
                out.append(orjson.loads(chunk[offset + header : offset + header + length]))
                offset += header + length
        return out


def event(name: str, n: int, actor: int | None = None) -> Event:
    return Event(channel="stream.1", name=name, data={"n": n}, actor_id=actor)


def hub(**settings: object) -> Hub:
    return Hub(
        encoders={"plain": PlainEncoder()}, settings=HubSettings(tick_seconds=0.001, **settings)
    )  # type: ignore[arg-type]


async def test_frames_of_a_tick_go_out_in_one_write_per_socket() -> None:
    h = hub()
    sockets = [Socket() for _ in range(3)]
    for s in sockets:
        h.subscribe(s, "stream.1", "plain")
    for n in range(5):
        h.deliver(event(GIFT_SENT, n))
    await asyncio.sleep(0.01)
    for s in sockets:
        assert len(s.transport.writes) == 1
        assert [e["data"] for e in s.events()] == [{"n": n} for n in range(5)]
    assert h.stats.frames_out == 15 and h.stats.writes == 3


async def test_counters_keep_only_the_latest_per_tick() -> None:
    h = hub()
    s = Socket()
    h.subscribe(s, "stream.1", "plain")
    for n in range(10):
        h.deliver(event(VIEWER_COUNT_UPDATED, n))
    h.deliver(event(GIFT_SENT, 99))
    await asyncio.sleep(0.01)
    names = [(e["event"], e["data"]) for e in s.events()]
    assert names == [(VIEWER_COUNT_UPDATED, {"n": 9}), (GIFT_SENT, {"n": 99})]
    # A socket that had the old count gets the new one; one that had not gets only the newest.
    late = Socket()
    h.subscribe(late, "stream.1", "plain")
    h.deliver(event(VIEWER_COUNT_UPDATED, 10))
    h.deliver(event(VIEWER_COUNT_UPDATED, 11))
    await asyncio.sleep(0.01)
    assert s.events()[-1] == {"event": VIEWER_COUNT_UPDATED, "data": {"n": 11}}
    assert len(s.events()) == 3
    assert late.events() == [{"event": VIEWER_COUNT_UPDATED, "data": {"n": 11}}]


async def test_big_busy_rooms_sample_comments_but_the_author_sees_theirs() -> None:
    h = hub(sample_room_size=3, sample_per_second=2)
    author = Socket(user_id=7)
    others = [Socket(user_id=i) for i in range(3)]
    for s in [author, *others]:
        h.subscribe(s, "stream.1", "plain")
    for n in range(5):
        h.deliver(event(NEW_COMMENT, n, actor=7))
    h.deliver(event(GIFT_SENT, 100))  # gifts are never sampled
    await asyncio.sleep(0.01)
    seen = [e["data"]["n"] for e in others[0].events()]  # type: ignore[index]
    assert seen == [0, 1, 100]
    assert sorted(e["data"]["n"] for e in author.events()) == [0, 1, 2, 3, 4, 100]  # type: ignore[index]
    assert h.stats.sampled_out == 3


async def test_small_rooms_get_every_comment() -> None:
    h = hub(sample_room_size=10, sample_per_second=1)
    s = Socket()
    h.subscribe(s, "stream.1", "plain")
    for n in range(20):
        h.deliver(event(NEW_COMMENT, n))
    await asyncio.sleep(0.01)
    assert len(s.events()) == 20


async def test_a_socket_that_does_not_read_is_closed_and_dropped() -> None:
    h = hub(max_buffer_bytes=1000)
    slow, fine = Socket(buffered=5000), Socket()
    for s in (slow, fine):
        h.subscribe(s, "stream.1", "plain")
    h.deliver(event(GIFT_SENT, 1))
    await asyncio.sleep(0.01)
    assert slow.closed_slow and slow.transport.writes == []
    assert fine.events() and h.local_count("stream.1") == 1
    assert h.stats.slow_closed == 1


async def test_unsubscribed_and_dropped_sockets_get_nothing() -> None:
    h = hub()
    a, b = Socket(user_id=1), Socket(user_id=2)
    h.subscribe(a, "stream.1", "plain")
    h.subscribe(b, "stream.1", "plain")
    h.unsubscribe(a, "stream.1")
    h.drop(b)
    h.deliver(event(GIFT_SENT, 1))
    await asyncio.sleep(0.01)
    assert a.transport.writes == [] and b.transport.writes == []
    assert h.channels() == [] and h.sockets_of(2) == set()


async def test_a_fed_channel_carries_its_source_under_its_own_name() -> None:
    from tajiri_live.realtime.pusher import PusherEncoder, hub_channel

    fanout = Hub(
        encoders={"plain": PlainEncoder(), "pusher-mobile": PusherEncoder("mobile", "")},
        settings=HubSettings(tick_seconds=0.001),
    )
    plain, pushed = Socket(), Socket()
    fanout.subscribe(plain, "stream.1", "plain")
    private = hub_channel("1", "private-stream.1")
    fanout.subscribe(pushed, private, "pusher-mobile", source="stream.1")
    fanout.deliver(Event(channel="stream.1", name=GIFT_SENT, data={"n": 1}))
    await asyncio.sleep(0.01)
    assert plain.events() == [{"event": GIFT_SENT, "data": {"n": 1}}]
    assert pushed.events() == [
        {"event": GIFT_SENT, "channel": "private-stream.1", "data": '{"n":1}'}
    ]
    fanout.unsubscribe(pushed, private)
    fanout.deliver(Event(channel="stream.1", name=GIFT_SENT, data={"n": 2}))
    await asyncio.sleep(0.01)
    assert len(pushed.events()) == 1  # no longer fed
    assert len(plain.events()) == 2


async def test_an_event_can_skip_the_socket_that_caused_it() -> None:
    from tajiri_live.realtime.pusher import PusherEncoder

    fanout = Hub(
        encoders={"pusher-both": PusherEncoder("both", "App\\Events")},
        settings=HubSettings(tick_seconds=0.001),
    )
    sender, other = Socket(), Socket()
    for sock in (sender, other):
        fanout.subscribe(sock, "pusher/1/private-chat", "pusher-both")
    fanout.deliver(
        Event(
            channel="pusher/1/private-chat",
            name="client-typing",
            data={},
            wire='{"who":1}',
            except_socket=sender.socket_id,
        )
    )
    await asyncio.sleep(0.01)
    assert sender.events() == []
    assert other.events() == [
        {"event": "client-typing", "channel": "private-chat", "data": '{"who":1}'}
    ]


def test_pusher_event_name_sets() -> None:
    from tajiri_live.realtime.events import REACTION, STATUS_CHANGED
    from tajiri_live.realtime.pusher import PusherEncoder

    ended = Event(channel="stream.1", name=STATUS_CHANGED, data={"status": "ended"})
    live = Event(channel="stream.1", name=STATUS_CHANGED, data={"status": "live"})
    tap = Event(channel="stream.1", name=REACTION, data={})
    echo = PusherEncoder("echo", "App\\Events")
    assert echo.names_for(live) == ["App\\Events\\StreamStatusChanged"]
    assert echo.names_for(ended) == ["App\\Events\\StreamStatusChanged", "App\\Events\\StreamEnded"]
    assert echo.names_for(tap) == [REACTION]  # no class for it: the plain name
    assert PusherEncoder("both", "").names_for(live) == [STATUS_CHANGED, "StreamStatusChanged"]
    assert PusherEncoder("mobile", "App\\Events").names_for(ended) == [STATUS_CHANGED]


async def test_a_frame_that_arrives_mid_turn_reaches_the_sockets_not_yet_visited() -> None:
    h = hub(sockets_per_step=2)
    sockets = [Socket() for _ in range(6)]
    for s in sockets:
        h.subscribe(s, "stream.1", "plain")
    h.deliver(event(GIFT_SENT, 1))
    await asyncio.sleep(0)  # one step: the first two sockets are written
    assert [len(s.transport.writes) for s in sockets] == [1, 1, 0, 0, 0, 0]
    h.deliver(event(GIFT_SENT, 2))
    late = Socket()
    h.subscribe(late, "stream.1", "plain")  # joins mid-turn: owed only what comes after
    h.deliver(event(GIFT_SENT, 3))
    await asyncio.sleep(0.02)
    for s in sockets:
        assert [e["data"] for e in s.events()] == [{"n": 1}, {"n": 2}, {"n": 3}]
    # visited before 2 and 3 arrived: a second write in the next turn; the rest: one write
    assert [len(s.transport.writes) for s in sockets] == [2, 2, 1, 1, 1, 1]
    assert late.events() == [{"event": GIFT_SENT, "data": {"n": 3}}]
    assert h.stats.frames_out == 19 and h.stats.writes == 9


async def test_a_socket_that_leaves_mid_turn_is_skipped_and_the_log_is_trimmed() -> None:
    h = hub(sockets_per_step=1)
    a, b, c = Socket(), Socket(), Socket()
    for s in (a, b, c):
        h.subscribe(s, "stream.1", "plain")
    h.deliver(event(GIFT_SENT, 1))
    await asyncio.sleep(0)
    h.drop(b)
    await asyncio.sleep(0.02)
    assert len(a.events()) == 1 and b.events() == [] and len(c.events()) == 1
    group = h._channels["stream.1"]["plain"]
    h.deliver(event(GIFT_SENT, 2))
    await asyncio.sleep(0.02)
    assert [e["data"] for e in c.events()] == [{"n": 1}, {"n": 2}]
    h.deliver(event(GIFT_SENT, 3))
    await asyncio.sleep(0.02)
    assert len(group.log) <= 1  # frames everyone has were forgotten


async def test_small_rooms_share_a_step() -> None:
    h = hub(sockets_per_step=10)
    rooms = [Socket() for _ in range(8)]
    for n, s in enumerate(rooms):
        h.subscribe(s, f"stream.{n + 10}", "plain")
        h.deliver(Event(channel=f"stream.{n + 10}", name=GIFT_SENT, data={"n": n}))
    await asyncio.sleep(0)  # one step: eight one-socket rooms fit in one slice's worth
    assert [len(s.transport.writes) for s in rooms] == [1] * 8


async def test_an_event_for_some_users_reaches_only_their_sockets() -> None:
    h = hub()
    owner, cohost, viewer, elsewhere = Socket(1), Socket(2), Socket(3), Socket(1)
    for s in (owner, cohost, viewer):
        h.subscribe(s, "stream.1", "plain")
    h.subscribe(elsewhere, "stream.2", "plain")  # the owner's socket on another stream
    h.deliver(Event("stream.1", "stream_health_warning", {"n": 1}, to_users=(1, 2)))
    await asyncio.sleep(0.01)
    assert [e["event"] for e in owner.events()] == ["stream_health_warning"]
    assert [e["event"] for e in cohost.events()] == ["stream_health_warning"]
    assert viewer.events() == [] and elsewhere.events() == []


async def test_an_anonymous_socket_that_proves_its_user_gets_that_users_events() -> None:
    h = hub()
    anonymous = Socket(None)
    h.subscribe(anonymous, "stream.1", "plain")
    h.deliver(Event("stream.1", "for_hosts", {"n": 1}, to_users=(7,)))
    h.identify(anonymous, 7)
    h.deliver(Event("stream.1", "for_hosts", {"n": 2}, to_users=(7,)))
    await asyncio.sleep(0.01)
    assert [e["data"] for e in anonymous.events()] == [{"n": 2}]
    h.drop(anonymous)
    assert h.sockets_of(7) == set()


async def test_keyed_counters_keep_the_newest_value_and_drop_stale_ones() -> None:
    h = hub()
    s = Socket()
    h.subscribe(s, "stream.1", "plain")

    def total(option: int, votes: int) -> Event:
        return Event(
            "stream.1",
            "poll_vote",
            {"option_id": option, "votes": votes},
            latest_key=f"poll_vote:1:{option}",
            version=votes,
        )

    for votes in (1, 2, 3):
        h.deliver(total(10, votes))
    h.deliver(total(11, 1))
    await asyncio.sleep(0.01)
    assert [e["data"] for e in s.events()] == [
        {"option_id": 10, "votes": 3},
        {"option_id": 11, "votes": 1},
    ]
    # a lower value that took a slower path (another node) after a higher one: dropped
    h.deliver(total(10, 2))
    h.deliver(total(10, 5))
    h.deliver(total(10, 4))
    await asyncio.sleep(0.01)
    assert [e["data"]["votes"] for e in s.events()][2:] == [5]


async def test_the_coalescer_sends_a_lone_value_at_once_and_a_burst_once_per_tick() -> None:
    from tajiri_live.realtime.coalesce import Coalescer

    sent: list[Event] = []

    async def publish(event: Event) -> None:
        sent.append(event)

    coalescer = Coalescer(publish, tick_seconds=0.5)

    def value(key: str, n: int) -> Event:
        return Event("stream.1", "counter", {"n": n}, latest_key=key, version=n)

    coalescer.offer(value("a", 1))
    await asyncio.sleep(0.02)
    assert [e.data["n"] for e in sent] == [1]  # a lone change is not delayed
    for n in range(2, 50):
        coalescer.offer(value("a", n))
        coalescer.offer(value("b", n))
    coalescer.offer(value("a", 3))  # lower than what is pending: ignored
    await asyncio.sleep(0.05)
    assert len(sent) == 1  # the burst waits for the tick
    await asyncio.sleep(0.7)
    assert sorted((e.latest_key, e.data["n"]) for e in sent[1:]) == [("a", 49), ("b", 49)]
    coalescer.offer(value("c", 1))
    coalescer.discard("c")
    await coalescer.close()
    assert len(sent) == 3 and coalescer.offered == 99
