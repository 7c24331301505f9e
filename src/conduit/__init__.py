"""Conduit: the RealWorld API as a production service.

Importing it sets the collector's thresholds to those a serving process keeps
(`conduit.main.GC_YOUNG_THRESHOLD`), before the rest of Conduit and its libraries is imported.
At CPython's default (700) a start collected ~310 times while it imported its modules and built
its app, ~15% of its CPU spent traversing again and again modules, classes, schemas and routes
that live as long as the process; at these, 22 times, and a third to a half less time in them
(docs/benchmarks.md, "Cold start").
"""

import gc

gc.set_threshold(10_000, 10, 10)
