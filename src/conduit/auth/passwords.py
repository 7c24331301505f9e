"""argon2id password hashing, off the event loop on a bounded pool of threads."""

from functools import cached_property

import anyio
import anyio.to_thread
from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet, argon2id: m=19 MiB, t=2, p=1.
_hasher = Argon2Hasher(time_cost=2, memory_cost=19456, parallelism=1)
# A real hash, with `_hasher`'s parameters, of a random password nobody kept: verified against
# when the account does not exist, so that a login for an unknown email costs as much as one
# with a wrong password. Written out rather than computed at start-up (30 ms of every start).
DECOY_HASH = "$argon2id$v=19$m=19456,t=2,p=1$6Cd11TVTp7CUvg+Zp7LfzQ$0hA6ADcb/ZhOFzuLUjqgXL2kOrCuFz/cg+cCGw7MZQ8"  # noqa: E501


class PasswordHasher:
    def __init__(self, concurrency: int) -> None:
        self._concurrency = concurrency

    @cached_property
    def _limiter(self) -> anyio.CapacityLimiter:
        # Made by the first hash: making it loads anyio's asyncio backend, a hundredth of a
        # start, which a process needs for nothing else before its first sign-in.
        return anyio.CapacityLimiter(self._concurrency)

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(_hasher.hash, password, limiter=self._limiter)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; `None` (no such account) costs the same and is False."""
        matches = await anyio.to_thread.run_sync(
            _verify, password_hash or DECOY_HASH, password, limiter=self._limiter
        )
        return matches and password_hash is not None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
