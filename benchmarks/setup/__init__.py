"""What every benchmark sets up the same way: servers as child processes (`processes`, `servers`,
`reference`), the seeded benchmark databases (`database`), a PostgreSQL cluster and a Redis of a
run's own (`postgres`, `redis_server`), and Conduit as of a git ref (`baseline`)."""

from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results"
# The servers' logs and the request files of the latest run (not kept in git).
SCRATCH = RESULTS / "tmp"
