"""Read replicas and PgBouncer (issue 23): what routing reads costs a request, how long a dead
replica takes to be noticed and what clients see meanwhile, and how stale anonymous reads are
on a replica that applies transactions late.

    .tools/bin/uv run python -m benchmarks.replicas [--seconds 3] [--trials 3] [--workers 1,2]
        [--redis redis://127.0.0.1:6379/3] [--lag-ms 2000]

Everything runs on loopback, on one replicated cluster of the run's own: a primary and its
streaming replica, and a PgBouncer in transaction mode in front of each. They come from
`tests.replication`, which the tests of replicas stand on: a benchmark importing the tests'
helpers, rather than a second copy of a cluster that must be set up exactly so.

1. **Data.** `conduit migrate` and `conduit seed --scale tiny` on the primary, then
   `VACUUM (ANALYZE)`, replayed by the replica before anything is timed.
2. **Cost of routing.** Side by side, uncached and without rate limits: Conduit on the primary
   (`direct`), the same reading from the replica (`direct-replica`), the same without named
   prepared statements (`unprepared`), and behind PgBouncer (`pgbouncer`, and
   `pgbouncer-replica` whose replica has a PgBouncer of its own), as docs/deployment.md sets
   them up. wrk sends uncached anonymous reads, then the same signed in (a seeded user): the
   targets take turns within each trial, and each ratio to `direct` is the median of the
   trials' ratios. CPU per request is the server's process tree's, and the databases' (both
   PostgreSQL servers' process trees and the PgBouncers) over the same trial.
3. **A dead replica.** A Conduit reading from the replica (timeout 1 s) under a light load of
   anonymous reads; the replica stopped (connections refused), then in another round paused
   (SIGSTOP: connections hang); each time, how long until `/health/ready` says "down", the
   requests slower than 0.5 s and any not answered 2xx, and once it is back, how long until it
   says "ok" and reads run on the replica again. The clients and the polls of `/health/ready`
   open a connection per request, so that they reach every worker: each has its own view.
4. **Staleness.** The replica applying each transaction `--lag-ms` late, a signed-in writer
   PUTs a counter as its article's body every 100 ms and reads its article back (it must never
   see an older value); an anonymous reader GETs the article every 50 ms. A read's staleness
   is how long before it was sent the value it saw had been replaced (0 when current). Then
   the same with the read cache on, which fills only from a server that has the write.

Parts 3 and 4 run the highest `--workers` count with `--redis`, one worker without (a process's
memory is not shared). The cluster, PgBouncer, every server, wrk and the clients share this
machine's cores: see docs/benchmarks.md ("Read replicas and PgBouncer").

Parts 2 to 4 are `routing`, `dead_replica` and `staleness`, run in that order by `__main__`;
what they share is in `cluster` (the set-up, the data and the servers on it), `metrics` (where
a server's reads ran) and `watch` (a server watched under a light load, parts 3 and 4).
"""
