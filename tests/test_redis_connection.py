"""One multiplexed connection to a real Redis: concurrent calls share it and each gets its own
replies; an error reply is its call's alone; a call that gets no reply in time closes it and the
next call connects again."""

import asyncio
import secrets

import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from conduit.redis_connection import (
    Address,
    AuthenticationFailed,
    RedisConnection,
    ReplyError,
    address,
)

pytestmark = [pytest.mark.anyio, pytest.mark.one_pass]


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies(
    redis_url: str,
) -> None:
    connection = RedisConnection(redis_url, timeout_seconds=5)
    prefix = f"test:multiplexed:{secrets.token_hex(4)}"
    try:

        async def call(number: int) -> list[object]:
            key = f"{prefix}:{number}"
            return await connection.run(
                [("SET", key, number, "EX", 60), ("GET", key), ("CLIENT", "ID")]
            )

        replies = await asyncio.gather(*(call(number) for number in range(200)))
    finally:
        await connection.aclose()

    assert [reply[:2] for reply in replies] == [[b"OK", str(n).encode()] for n in range(200)]
    assert len({reply[2] for reply in replies}) == 1


async def test_an_error_reply_is_raised_to_its_call_alone(redis_url: str) -> None:
    connection = RedisConnection(redis_url, timeout_seconds=5)
    try:
        failing = connection.run([("PING",), ("NO-SUCH-COMMAND",)])
        succeeding = connection.run([("ECHO", "still here")])
        results = await asyncio.gather(failing, succeeding, return_exceptions=True)
        after = await connection.run([("ECHO", "after")])
    finally:
        await connection.aclose()

    assert isinstance(results[0], ReplyError)
    assert "unknown command" in str(results[0]).lower()
    assert results[1] == [b"still here"]
    assert after == [b"after"]


async def test_a_call_without_a_reply_in_time_closes_the_connection_and_the_next_connects(
    redis_url: str,
) -> None:
    connection = RedisConnection(redis_url, timeout_seconds=0.3)
    try:
        [first] = await connection.run([("CLIENT", "ID")])
        with pytest.raises(TimeoutError):
            # Blocks its connection for a second: no reply within the call's 0.3 s.
            await connection.run([("BLPOP", f"test:nothing:{secrets.token_hex(4)}", 1)])
        [second] = await connection.run([("CLIENT", "ID")])
    finally:
        await connection.aclose()

    assert second != first


async def test_a_late_call_sent_after_an_answered_one_times_out_at_its_own_deadline(
    redis_url: str,
) -> None:
    """The timer set for the first call finds it answered and the later call not yet due: it
    watches the later call instead, which then times out."""
    connection = RedisConnection(redis_url, timeout_seconds=0.3)
    try:
        await connection.run([("PING",)])
        await asyncio.sleep(0.2)
        with pytest.raises(TimeoutError):
            await connection.run([("BLPOP", f"test:nothing:{secrets.token_hex(4)}", 1)])
    finally:
        await connection.aclose()


async def test_refused_credentials_say_so(redis_url: str) -> None:
    scheme, _, rest = redis_url.partition("://")
    wrong = f"{scheme}://nobody:wrong-password@{rest.rpartition('@')[2]}"
    connection = RedisConnection(wrong, timeout_seconds=5)
    try:
        with pytest.raises(AuthenticationFailed):
            await connection.run([("PING",)])
    finally:
        await connection.aclose()


def test_an_option_it_does_not_honour_is_refused() -> None:
    with pytest.raises(ValueError, match="socket_keepalive"):
        RedisConnection("redis://localhost/0?socket_keepalive=true", timeout_seconds=1)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://cache", Address("cache", 6379, None, 0, None, None, None)),
        (
            "rediss://default:p%40ss@x.upstash.io:6380/2",
            Address("x.upstash.io", 6380, None, 2, "default", "p@ss", {}),
        ),
        (
            "redis://:secret@cache/0?db=3&ssl_cert_reqs=none",
            Address("cache", 6379, None, 3, None, "secret", None),
        ),
        (
            "unix:///run/redis.sock?db=1",
            Address("localhost", 6379, "/run/redis.sock", 1, None, None, None),
        ),
    ],
)
def test_an_address_is_read_from_the_url_as_redis_clients_read_it(
    url: str, expected: Address
) -> None:
    assert address(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://cache/zero", "the database is a number"),
        ("rediss://cache?ssl_cert_reqs=sometimes", "ssl_cert_reqs is none, optional or required"),
    ],
)
def test_an_address_it_cannot_take_is_refused_saying_why(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        address(url)


async def test_the_database_the_url_names_is_the_one_used(redis_url: str) -> None:
    other = f"{redis_url.rsplit('/', 1)[0]}/{(address(redis_url).db + 1) % 16}"
    key = f"test:database:{secrets.token_hex(4)}"
    connection = RedisConnection(other, timeout_seconds=5)
    try:
        await connection.run([("SET", key, "here", "EX", 60)])
    finally:
        await connection.aclose()

    with redis.Redis.from_url(other) as in_five, redis.Redis.from_url(redis_url) as in_url:
        assert (in_five.get(key), in_url.get(key)) == (b"here", None)


async def test_with_a_tracer_each_round_trip_is_a_span_named_by_its_commands(
    redis_url: str,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    connection = RedisConnection(redis_url, timeout_seconds=5, tracer=provider.get_tracer("test"))
    try:
        await connection.run([("PING",), ("ECHO", "traced")])
    finally:
        await connection.aclose()

    [span] = exporter.get_finished_spans()
    assert span.name == "PING ECHO"
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {})["db.system"] == "redis"
