"""HTTP load generators for benchmarks/deploy_benchmark.py: closed loop and open loop.

*Closed loop* (``load``): N clients, each sends its next request when the previous answer has come.
When the server stalls, the clients stall with it and stop sending, so the slow moments are measured by
few requests ("coordinated omission"), and the offered load drops to whatever the server manages.

*Open loop* (``open_loop``): the send time of every request is fixed before the first is sent,
``t_i = t_0 + i / rate`` (``schedule``), and each latency is counted from that scheduled time. A request
that had to wait, for a free connection or in the server's queue, counts its wait; the offered load is
the rate asked for, whatever the server does. This is what wrk2, vegeta and k6's arrival-rate executors do.

Both speak HTTP/1.1 over asyncio streams with the requests encoded once beforehand, so the client spends
as little CPU as it can. The scripts run as ``python benchmarks/NAME.py``, so this folder is on
``sys.path`` and they ``import loadgen``.
"""
from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import numpy as np


def raw_request(url: str, path: str, payload: dict) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive POST, built once by httpx (headers, multipart encoding)."""
    import httpx
    request = httpx.Request("POST", url + path, **payload)
    body = request.read()
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers.setdefault("content-length", str(len(body)))
    headers["connection"] = "keep-alive"
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Read one HTTP/1.1 response with a Content-Length (uvicorn sends one for JSON).

    Returns (status, body, whether the server closes the connection after it).
    """
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" not in fields:
        raise ValueError(f"response without Content-Length: {lines[0]!r}")
    body = await reader.readexactly(int(fields["content-length"]))
    return status, body, fields.get("connection", "").lower() == "close"


def run(coroutine):
    """asyncio.run, on uvloop's faster event loop where it is installed (the deploy extra installs it)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def load(url: str, payloads: list[dict], *, n: int, concurrency: int, path: str = "/predict") -> dict:
    """Closed loop: POST ``n`` requests (cycling through ``payloads``, httpx keyword dicts), ``concurrency``
    in flight.

    Each of the ``concurrency`` clients holds one keep-alive connection and sends its next request as
    soon as the previous answer has arrived. Returns requests/s, p50/p99 latency (ms, from each actual
    send), the number of failures (a status other than 200, or a broken connection) and the first
    failure's text.
    """
    parts = urlsplit(url)
    raw = [raw_request(url, path, p) for p in payloads]
    latencies, failures, first_failure = [], 0, None
    todo = iter(range(n))

    async def client():
        nonlocal failures, first_failure
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for i in todo:  # shared iterator: each request is taken by exactly one client
                start = time.perf_counter()
                try:
                    writer.write(raw[i % len(raw)])
                    status, body, close = await read_response(reader)
                    ok, text = status == 200, f"{status} {body[:200].decode('utf-8', 'replace')}"
                except (OSError, ValueError, asyncio.IncompleteReadError) as err:
                    ok, text, close = False, repr(err), True
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                latencies.append(time.perf_counter() - start)
                if not ok:
                    failures += 1
                    first_failure = first_failure or text
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    ms = np.array(latencies) * 1e3
    return {"n": n, "seconds": seconds, "rps": n / seconds, "p50_ms": float(np.median(ms)),
            "p99_ms": float(np.percentile(ms, 99)), "failures": failures, "first_failure": first_failure}


def schedule(rate: float, n: int, start: float = 0.0) -> np.ndarray:
    """The send times (s) of ``n`` requests at ``rate`` per second, fixed in advance: ``start + i / rate``."""
    if not rate > 0 or n < 1:
        raise ValueError(f"need rate > 0 and n >= 1, got rate={rate}, n={n}")
    return start + np.arange(n) / rate


def summarise(rate: float, scheduled: np.ndarray, done: np.ndarray, status: np.ndarray,
              lag: np.ndarray | None = None) -> dict:
    """Latency percentiles of an open-loop run, counted from each request's *scheduled* send time.

    ``scheduled`` and ``done`` are times in seconds on one clock (``done`` NaN where no answer came),
    ``status`` the HTTP status (0 for a broken connection). A request that failed never met any
    latency target, so it counts as infinitely slow: with more than 1% failures p99 is None.
    ``lag`` is how late the generator itself put each request out (a large p99 means the client,
    not the server, was the bottleneck).
    """
    ok = (status == 200) & np.isfinite(done)
    latency_ms = np.where(ok, (done - scheduled) * 1e3, np.inf)
    # "higher": a percentile is a latency some request really had (and infinity stays infinity)
    p50, p90, p99, worst = np.percentile(latency_ms, [50, 90, 99, 100], method="higher")
    answered = done[np.isfinite(done)]
    seconds = float(answered.max() - scheduled[0]) if answered.size else float("nan")

    def ms(value):
        return round(float(value), 3) if np.isfinite(value) else None

    return {"offered_rps": rate, "n": len(scheduled), "achieved_rps": round(int(ok.sum()) / seconds, 1)
            if seconds > 0 else 0.0, "p50_ms": ms(p50), "p90_ms": ms(p90), "p99_ms": ms(p99), "max_ms": ms(worst),
            "errors": int((~ok).sum()),
            "client_lag_p99_ms": None if lag is None else ms(np.percentile(lag * 1e3, 99, method="higher"))}


async def open_loop(url: str, payloads: list[dict], *, rate: float, n: int, path: str = "/predict",
                    max_connections: int = 256, warm_connections: int = 8, timeout: float = 10.0) -> dict:
    """Open loop: POST ``n`` requests at ``rate`` per second on a fixed schedule; return ``summarise``'s dict
    plus ``first_error`` (the text of the first failure).

    A request due while every connection is busy opens a new one (up to ``max_connections``), else
    waits for one; either way its latency counts from its scheduled time. ``warm_connections`` are
    opened before the clock starts. Requests unanswered ``timeout`` s after the last scheduled send
    count as failures.
    """
    host, port = urlsplit(url).hostname, urlsplit(url).port
    raw = [raw_request(url, path, p) for p in payloads]
    sends = schedule(rate, n)
    done, status = np.full(n, np.nan), np.zeros(n, dtype=np.int32)
    lag = np.zeros(n)
    due: asyncio.Queue = asyncio.Queue()
    all_answered = asyncio.Event()
    idle = answered = 0
    first_error = None

    async def worker(connection):
        nonlocal idle, answered, first_error
        reader, writer = connection or (None, None)
        try:
            while True:
                idle += 1
                i = await due.get()
                idle -= 1
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    writer.write(raw[i % len(raw)])
                    code, body, close = await read_response(reader)
                    error = None if code == 200 else f"{code} {body[:200].decode('utf-8', 'replace')}"
                except (OSError, ValueError, asyncio.IncompleteReadError) as err:
                    code, error, close = 0, repr(err), True
                done[i], status[i] = time.perf_counter(), code
                first_error = first_error or error
                if close and writer is not None:
                    writer.close()
                    reader, writer = None, None
                answered += 1
                if answered == n:
                    all_answered.set()
        finally:
            if writer is not None:
                writer.close()

    warm = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in range(warm_connections)))
    workers = [asyncio.ensure_future(worker(c)) for c in warm]
    await asyncio.sleep(0)  # the workers reach their first get()
    t0 = time.perf_counter() + 0.01
    sends = sends + t0
    for i in range(n):
        delay = sends[i] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag[i] = time.perf_counter() - sends[i]
        due.put_nowait(i)
        if due.qsize() > idle and len(workers) < max_connections:  # every connection is busy: open another
            workers.append(asyncio.ensure_future(worker(None)))
    try:
        await asyncio.wait_for(all_answered.wait(), timeout=max(0.0, sends[-1] + timeout - time.perf_counter()))
    except asyncio.TimeoutError:
        first_error = first_error or f"no answer within {timeout:g} s after the last send"
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return {**summarise(rate, sends, done, status, lag), "first_error": first_error}
