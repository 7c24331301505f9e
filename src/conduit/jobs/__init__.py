"""Background jobs (docs/jobs.md): work a request records in its own transaction and that runs
after it commits, never if it rolls back, and at least once whatever happens to the process.

A domain declares its tasks (`@task`) and enqueues them (`enqueue`); `conduit.tasks` lists them
all. Three backends run them: the embedded default (`outbox`), PgQueuer on PostgreSQL
(`postgres`), and QStash (`qstash`); `connect` builds the process's.
"""

from conduit.jobs.core import Arguments, Job, JobContext, Queue, Task, enqueue, task
from conduit.jobs.runtime import Jobs, connect

__all__ = [
    "Arguments",
    "Job",
    "JobContext",
    "Jobs",
    "Queue",
    "Task",
    "connect",
    "enqueue",
    "task",
]
