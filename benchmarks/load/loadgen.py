"""An open-loop load generator: requests start on a fixed schedule, whether or not earlier ones
have finished, and each latency counts from the scheduled start. wrk sends the next request
only when a connection is free, so a slow server also slows its load down and hides its queue
(coordinated omission); this generator does not. HTTP/1.1 keep-alive over raw asyncio streams,
so that the generator stays cheap next to the servers it measures. A long run is reported in
windows (`run_windows`): each request counts in the window it was scheduled in."""

import asyncio
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

import uvloop

from benchmarks.load.wrk import Request

REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class RateResult:
    target_rps: float
    achieved_rps: float
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu_seconds: float


def _encode(request: Request, host: str) -> bytes:
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    body = (request.body or "").encode()
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("a response without Content-Length")


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(slots=True)
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


class _Client:
    def __init__(self, host: str, port: int, connections: int) -> None:
        self.host, self.port = host, port
        self.idle: asyncio.Queue[Connection] = asyncio.Queue()
        self.slots = asyncio.Semaphore(connections)

    async def _exchange(self, connection: Connection, payload: bytes) -> int:
        reader, writer = connection
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(_content_length(head))
        return int(head.split(b" ", 2)[1])

    async def send(self, payload: bytes, scheduled: float, tally: _Tally) -> None:
        async with self.slots:
            connection = (
                self.idle.get_nowait()
                if not self.idle.empty()
                else await asyncio.open_connection(self.host, self.port)
            )
            try:
                status = await asyncio.wait_for(
                    self._exchange(connection, payload), REQUEST_TIMEOUT_SECONDS
                )
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
                tally.errors += 1
                connection[1].close()
                return
            self.idle.put_nowait(connection)
        tally.latencies.append(time.monotonic() - scheduled)
        if not HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
            tally.errors += 1

    def close(self) -> None:
        while not self.idle.empty():
            self.idle.get_nowait()[1].close()


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


OnWindow = Callable[[RateResult], None]


async def _finish(
    tasks: list[asyncio.Task[None]],
    tally: _Tally,
    *,
    rate: float,
    began: float,
    cpu_began: float,
    previous: asyncio.Task[RateResult] | None,
    on_window: OnWindow | None,
) -> RateResult:
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - began
    cpu = time.process_time() - cpu_began
    latencies = sorted(tally.latencies)
    result = RateResult(
        target_rps=rate,
        achieved_rps=len(latencies) / elapsed,
        requests=len(tasks),
        errors=tally.errors,
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p90_ms=_percentile(latencies, 0.9) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        max_ms=latencies[-1] * 1000 if latencies else float("nan"),
        generator_cpu_seconds=cpu,
    )
    # In order, although a window's stragglers can outlast the next window's.
    if previous is not None:
        await previous
    if on_window is not None:
        on_window(result)
    return result


async def _run(
    base_url: str,
    requests: Sequence[Request],
    *,
    rate: float,
    windows: Sequence[float],
    connections: int,
    on_window: OnWindow | None,
) -> list[RateResult]:
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    payloads = [_encode(request, f"{host}:{port}") for request in requests]
    client = _Client(host, port, connections)
    start = time.monotonic()
    finishing: list[asyncio.Task[RateResult]] = []
    number = 0
    for began, end in itertools.pairwise([0.0, *itertools.accumulate(windows)]):
        cpu_began, tally, tasks = time.process_time(), _Tally(), []
        while number < int(rate * end):
            scheduled = start + number / rate
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
            payload = payloads[number % len(payloads)]
            tasks.append(asyncio.create_task(client.send(payload, scheduled, tally)))
            number += 1
        finish = _finish(
            tasks,
            tally,
            rate=rate,
            began=start + began,
            cpu_began=cpu_began,
            previous=finishing[-1] if finishing else None,
            on_window=on_window,
        )
        finishing.append(asyncio.create_task(finish))
    results = await asyncio.gather(*finishing)
    client.close()
    return results


def run_at_rate(
    base_url: str,
    requests: Sequence[Request],
    *,
    rate: float,
    seconds: float,
    connections: int = 64,
) -> RateResult:
    return run_windows(base_url, requests, rate=rate, windows=[seconds], connections=connections)[0]


def run_windows(
    base_url: str,
    requests: Sequence[Request],
    *,
    rate: float,
    windows: Sequence[float],
    connections: int = 64,
    on_window: OnWindow | None = None,
) -> list[RateResult]:
    """One uninterrupted run at `rate`, reported per window of the given lengths (seconds);
    `on_window` gets each window's result, in order, once its last request has returned."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(
            _run(
                base_url,
                requests,
                rate=rate,
                windows=windows,
                connections=connections,
                on_window=on_window,
            )
        )
