"""Every task, imported in one place so that every backend runs the same set, and the periodic
ones with their schedules (cron, UTC)."""

from collections.abc import Mapping
from typing import Any

from conduit.api_keys import tasks as api_keys_tasks
from conduit.auth import password_reset
from conduit.auth import tasks as auth_tasks
from conduit.jobs import Task, outbox
from conduit.notifications import tasks as notifications_tasks

TASKS: Mapping[str, Task[Any]] = {
    task.name: task
    for task in (
        notifications_tasks.article_published,
        notifications_tasks.comment_created,
        notifications_tasks.user_followed,
        auth_tasks.send_welcome,
        auth_tasks.send_email_changed,
        password_reset.send_token,
        auth_tasks.purge,
        api_keys_tasks.purge,
        outbox.purge_qstash_deliveries,
    )
}

SCHEDULES: Mapping[str, str] = {
    auth_tasks.purge.name: "17 * * * *",
    api_keys_tasks.purge.name: "47 * * * *",
    outbox.purge_qstash_deliveries.name: "27 4 * * *",
}
