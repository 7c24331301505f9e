"""Where a request's CPU goes, by layer: one Conduit worker as deployed (benchmarks.setup.servers:
JSON access log, metrics on, rate limits counted), warmed up, then driven by wrk (`-t1 -c32`,
as the harness drives it) while py-spy samples it (`spy`); the server's CPU time over the run
(utime + stime of its process, `/proc`) divided by the requests wrk counted is its CPU per
request, and each layer's share of the samples (`layers`) is that layer's part of it.

    .tools/bin/uv run --group bench python -m benchmarks.profile --scale tiny --path /api/tags
        [--redis redis://127.0.0.1:6379/0] [--seconds 10] [--uncached] [--native]
    .tools/bin/uv run --group bench python -m benchmarks.profile --scale tiny --scenario article

See docs/benchmarks.md ("Running it").
"""
