"""The bare FastAPI app: the reference Conduit's cold start is measured against
(benchmarks.cold_start). What any app on the same stack pays before it answers: FastAPI and
pydantic, SQLAlchemy's asyncio layer, uvicorn with uvloop and httptools; one route."""
