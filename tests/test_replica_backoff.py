"""How long a failed replica is left alone (`conduit.database.replicas.Replica.failed`): twice
as long after each failure in a row, with jitter, and the reads that were in flight together
when it failed count once."""

from typing import cast

import pytest

from conduit.database.read_path import AsyncpgPoolReader
from conduit.database.replicas import BACKOFF_CAP_SECONDS, Replica

pytestmark = pytest.mark.one_pass


def _replica() -> Replica:
    # Never read from: only its bookkeeping is the subject.
    return Replica(name="replica:5432/conduit", reader=cast("AsyncpgPoolReader", None))


def test_reads_that_fail_together_are_one_failure() -> None:
    replica = _replica()

    assert replica.failed(100.0)
    assert not replica.failed(100.01)
    assert not replica.failed(100.02)

    assert replica.failures == 1
    assert 100.5 <= replica.down_until <= 101.0


def test_each_failure_in_a_row_doubles_the_wait_up_to_the_cap() -> None:
    replica = _replica()
    now = 0.0
    waits = []
    for _ in range(8):
        assert replica.failed(now)
        waits.append(replica.down_until - now)
        now = replica.down_until

    for failure, wait in enumerate(waits):
        cap = min(BACKOFF_CAP_SECONDS, 2.0**failure)
        assert cap / 2 <= wait <= cap
