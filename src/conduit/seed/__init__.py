"""A deterministic, realistic dataset for demos and benchmarks: `conduit seed`.

The same seed, scale and anchor time give the same rows. Rows are planned in memory (who wrote
what, when, with which tags), then generated and written table by table in batches: COPY on
PostgreSQL, executemany on SQLite. Ids are assigned here, in creation order, so that no insert
has to report one back.
"""

from conduit.seed.plan import SCALES, SEEDED_TABLES, SPAN, Plan, Scale, ScaleName, plan
from conduit.seed.text import BODY_CHARS, tag_vocabulary
from conduit.seed.write import SEED_PASSWORD, DatabaseNotReady, ensure_ready, seed

__all__ = [
    "BODY_CHARS",
    "SCALES",
    "SEEDED_TABLES",
    "SEED_PASSWORD",
    "SPAN",
    "DatabaseNotReady",
    "Plan",
    "Scale",
    "ScaleName",
    "ensure_ready",
    "plan",
    "seed",
    "tag_vocabulary",
]
