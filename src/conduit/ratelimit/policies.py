import math
from dataclasses import dataclass

from conduit.config import Algorithm, Rate, RateLimitSettings


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    quota: int
    window_seconds: int
    algorithm: Algorithm
    # While the shared store is down, count in this process (True) or let requests through.
    falls_back: bool = False

    @property
    def window_ms(self) -> int:
        return self.window_seconds * 1000

    @property
    def refill_interval_ms(self) -> int:
        """A token bucket holds `quota` tokens and gets one back each interval: `quota` per
        window on average, and at most `quota` at once."""
        return max(1, self.window_ms // self.quota)

    @property
    def header(self) -> str:
        """This policy in `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers)."""
        return f'"{self.name}";q={self.quota};w={self.window_seconds}'


@dataclass(frozen=True, slots=True)
class Decision:
    policy: Policy
    allowed: bool
    remaining: int
    # Unix time, in seconds, at which the policy's quota is back.
    reset_at: float

    def reset_in(self, now: float) -> int:
        return max(0, math.ceil(self.reset_at - now))

    def retry_after(self, now: float) -> int:
        """For a refused request: whole seconds to wait, at least one."""
        return max(1, self.reset_in(now))

    def header(self, now: float) -> str:
        """This decision in `RateLimit`."""
        return f'"{self.policy.name}";r={self.remaining};t={self.reset_in(now)}'


@dataclass(frozen=True, slots=True)
class Policies:
    anonymous: Policy
    reads: Policy
    writes: Policy
    sign_in: Policy
    failed_sign_ins: Policy
    failed_sign_ins_per_account: Policy
    password_resets: Policy
    cache_fills: Policy

    @classmethod
    def from_settings(cls, settings: RateLimitSettings) -> "Policies":
        def policy(name: str, rate: Rate, *, falls_back: bool = False) -> Policy:
            return Policy(
                name=name,
                quota=rate.quota,
                window_seconds=rate.window_seconds,
                algorithm=rate.algorithm or settings.algorithm,
                falls_back=falls_back,
            )

        return cls(
            anonymous=policy("anonymous", settings.anonymous),
            reads=policy("reads", settings.reads),
            writes=policy("writes", settings.writes),
            sign_in=policy("sign-in", settings.sign_in, falls_back=True),
            failed_sign_ins=policy("failed-sign-ins", settings.failed_sign_ins, falls_back=True),
            failed_sign_ins_per_account=policy(
                "failed-sign-ins-per-account", settings.failed_sign_ins_per_account, falls_back=True
            ),
            password_resets=policy("password-resets", settings.password_resets, falls_back=True),
            cache_fills=policy("cache-fills", settings.cache_fills),
        )
