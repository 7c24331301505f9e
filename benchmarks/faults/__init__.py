"""Faults under load: what clients of a real `conduit serve` see while its database or its Redis
fails, and after.

Each scenario runs on loopback against a PostgreSQL cluster (and a Redis) of its own that it
creates in a temporary directory (benchmarks.setup), loads Conduit with client tasks that read
and write without pause (`load`), injects one fault for a few seconds (`scenarios`), and lets
the load run on after it (`run`). It prints, per phase (before the fault, during it, after it),
the requests by status; the requests that had no response; how long after the fault a request
last failed; what the server logged (one-line reports, tracebacks); and how many acknowledged
writes the database holds afterwards (`result`).

    .tools/bin/uv run python -m benchmarks.faults [--scenario db-restart] [--workers 1]

- `db-restart`: PostgreSQL stopped (`pg_ctl stop -m fast`), down for `--outage` seconds, started.
- `redis-restart`: the Redis that holds rate limits and the read cache stopped, then started.
- `slow-db`: the articles table locked (ACCESS EXCLUSIVE) from another connection, so that
  every statement that touches it waits.
- `pool-exhausted`: the same lock with small pools and more clients than connections.

See docs/operations.md ("Faults under load") for the numbers.
"""
