"""`python -m benchmarks.floor --port P --workers N`: the floor, served exactly as `conduit serve
--no-access-log` serves Conduit (uvicorn, uvloop, httptools, no proxy headers)."""

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    uvicorn.run(
        "benchmarks.floor.app:app",
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
