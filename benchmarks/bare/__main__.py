"""`python -m benchmarks.bare --port P`: the bare FastAPI app, served as `conduit serve` serves
Conduit (uvicorn, uvloop, httptools, no proxy headers)."""

from benchmarks.setup import reference

reference.serve("benchmarks.bare.app:app", __doc__)
