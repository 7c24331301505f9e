"""Authorization and hardening tests, one module per OWASP API Security Top 10 (2023) item that
applies to Conduit. API6 (sensitive business flows) and API10 (unsafe consumption of APIs) are
covered by later work: rate limiting, and the outbound QStash and email integrations."""
