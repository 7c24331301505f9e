"""How a reference server (the floor, the bare FastAPI app) is served: as `conduit serve
--no-access-log` serves Conduit (uvicorn, uvloop, httptools, no proxy headers), from a command
line of `--host`, `--port` and `--workers`. It imports nothing but uvicorn: the bare app's
start-up is measured against Conduit's (benchmarks.cold_start)."""

import argparse

import uvicorn


def serve(app: str, description: str | None) -> None:
    """Serve the ASGI application `app` ("module:attribute") as the command line says."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    uvicorn.run(
        app,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        proxy_headers=False,
    )
