"""Redis's own counters, read just before and just after a trial on one connection: how many
round trips (replies written), rate-limit scripts and cache lookups and fills a target's
requests cost it."""

from collections.abc import Mapping
from dataclasses import dataclass

import redis

# The reply to the INFO that opens a trial's count is written after Redis read its counters,
# so the closing INFO counts it; its own reply comes after its reading.
HARNESS_WRITES = 1
# A cached read looks its entry up (MGET) once; a target that sent fewer lookups than this per
# request served does not cache, and what was counted came from another client of that Redis.
MIN_LOOKUPS_PER_REQUEST = 0.5


@dataclass(frozen=True, slots=True)
class RedisCounts:
    """Redis's counters, server-wide: every client of that Redis counts in them."""

    # INFO stats `total_writes_processed`: reply writes to clients, one per round trip (the
    # replies to commands that arrived together go out in one write).
    writes: int
    # INFO commandstats, the calls of: EVALSHA and EVAL (rate limiting; the commands a script
    # runs count under their own names), SET, SETEX and PSETEX (cache entries written), MGET
    # (cache lookups).
    scripts: int
    sets: int
    mgets: int


def _calls(stats: Mapping[str, object], *commands: str) -> int:
    calls = 0
    for command in commands:
        entry = stats.get(f"cmdstat_{command}")
        if isinstance(entry, dict):
            calls += int(entry["calls"])
    return calls


def read(client: redis.Redis) -> RedisCounts:
    """One INFO for both sections: one reply, whose write the next reading counts."""
    stats = client.info("stats", "commandstats")
    return RedisCounts(
        writes=int(stats["total_writes_processed"]),
        scripts=_calls(stats, "evalsha", "eval"),
        sets=_calls(stats, "set", "setex", "psetex"),
        mgets=_calls(stats, "mget"),
    )


def since(client: redis.Redis, before: RedisCounts) -> RedisCounts:
    """What Redis did since `before` was read, less its reply to that reading."""
    after = read(client)
    return RedisCounts(
        writes=after.writes - before.writes - HARNESS_WRITES,
        scripts=after.scripts - before.scripts,
        sets=after.sets - before.sets,
        mgets=after.mgets - before.mgets,
    )


def per_request(count: int, requests: int) -> float | None:
    return count / requests if requests else None


def hit_rate(counts: RedisCounts, requests: int) -> float | None:
    """Approximate: a lookup whose entry was missing is followed by one SET that rebuilds it."""
    if not counts.mgets or counts.mgets < MIN_LOOKUPS_PER_REQUEST * requests:
        return None
    return 1 - counts.sets / counts.mgets
