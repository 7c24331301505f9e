"""PostgreSQL restarted under load: a real `conduit serve`, read from and written to without
pause, on a PostgreSQL cluster of the test's own that is stopped for a moment and started
again. While the database is down every request is answered 503 in the API's error shape with
`Retry-After`, no connection is closed without an answer and the log has one line, no
traceback; once it is back every request succeeds, and every write that was acknowledged is
there.

The load, the cluster and the counting are `benchmarks.faults`'s `db-restart` scenario,
shortened (docs/operations.md, "Faults under load").
"""

from collections import Counter
from pathlib import Path

import pytest
from benchmarks.faults.load import Shape
from benchmarks.faults.run import run
from benchmarks.faults.scenarios import Scenario, stopped
from benchmarks.setup import postgres

from tests.databases import POSTGRES_PASS

pytestmark = [
    pytest.mark.e2e,
    POSTGRES_PASS,
    pytest.mark.skipif(
        not postgres.installed(),
        reason="needs PostgreSQL's server programs (initdb) for a cluster of its own",
    ),
]

SHAPE = Shape(
    "PostgreSQL stopped (-m fast), down 1.5 s, started",
    readers=4,
    writers=1,
    before_seconds=1.5,
    fault_seconds=1.5,
    after_seconds=3,
    env={"CONDUIT_CACHE_ENABLED": "false"},
)


def test_a_restart_of_postgresql_under_load_is_503s_then_service_without_a_lost_write(
    tmp_path: Path,
) -> None:
    with postgres.private_cluster() as cluster:
        url = cluster.create_database("restart")
        result = run(
            Scenario.DB_RESTART,
            SHAPE,
            stopped(cluster, postgres.StopMode.FAST),
            url=url,
            workers=1,
            logs=tmp_path,
        )

    report = f"\n{result.report()}"
    print(report)  # noqa: T201
    statuses = Counter(outcome.status for outcome in result.outcomes)
    assert set(statuses) <= {200, 201, 503}, report
    assert not [o for o in result.outcomes if not o.well_formed], report
    assert statuses[503], f"the restart was not felt{report}"
    # A read that had just found its connection closed is retried on a new one.
    assert not result.failed_once_recovered(), report
    assert any(outcome.status == 201 for outcome in result.phase("after")), report
    assert result.log.tracebacks == result.log.errors == result.log.not_json == 0, report
    assert result.log.database_reports == 1, report
    assert result.acknowledged, report
    assert result.acknowledged <= result.found, report
