"""`python -m benchmarks.floor --port P --workers N`: the floor, served exactly as `conduit serve
--no-access-log` serves Conduit (uvicorn, uvloop, httptools, no proxy headers)."""

from benchmarks.setup import reference

reference.serve("benchmarks.floor.app:app", __doc__)
