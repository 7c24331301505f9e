"""Schemathesis hooks for `tests/e2e/test_fuzz.py`: the operations that authenticate get the
token of a user registered for the run, and of a new one after any 401, since the fuzzer signs
its own sessions out (`/api/auth/logout-all`, a new password)."""

import secrets
from typing import Any

import httpx
import schemathesis


@schemathesis.auth()
class RegisteredUser:
    def get(self, _case: schemathesis.Case[Any], context: schemathesis.AuthContext) -> str:
        name = f"fuzzer-{secrets.token_hex(8)}"
        response = httpx.post(
            f"{context.operation.schema.get_base_url().rstrip('/')}/api/users",
            json={
                "user": {
                    "username": name,
                    "email": f"{name}@example.com",
                    "password": secrets.token_urlsafe(16),
                }
            },
        )
        response.raise_for_status()
        token: str = response.json()["user"]["token"]
        return token

    def set(
        self, case: schemathesis.Case[Any], data: str, _context: schemathesis.AuthContext
    ) -> None:
        case.headers["Authorization"] = f"Token {data}"
