#!/usr/bin/env python3
"""Real MCP traffic for scripts/suites/monitoring-e2e.sh, on the official Python SDK: short sessions from a few
client applications (initialize, tools/list, ping, `work` calls of varied cost and size, some with
`fail: true`, `echo`, calls of tools that do not exist), one long-lived session per endpoint (so sessions and
GET streams stay open), a tour of unknown tools that overflows the gateway's label limit, and bursts of
concurrent slow calls that overflow the gateway's admission queue.
Failures are expected (an agent is killed mid-run) and counted, not fatal.

    drive.py --endpoint URL [--endpoint URL ...] --seconds 60 --sessions-per-second 0.8

Prints one JSON summary line; exits 1 only if hardly anything succeeded.
"""

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from datetime import timedelta

from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

CLIENTS = ["claude-desktop", "cursor", "e2e-driver"]
# More distinct unknown tool names than the gateway's --label-limit leaves room for, so the label overflow
# counter moves (the suite starts the gateway with --label-limit 6).
MISSING_TOOLS = [f"missing-{n}" for n in range(1, 7)]
CALL_TIMEOUT = timedelta(seconds=10)
SESSION_TIMEOUT = 30
BURST_EVERY = 12
BURST_SESSIONS = 14
# Time for the burst's sessions to initialize before their calls start together.
BURST_SETTLE = 1.0


class Tally:
    def __init__(self):
        self.counts = {"sessions": 0, "session_failures": 0, "calls": 0, "tool_errors": 0, "call_failures": 0}

    def add(self, key, n=1):
        self.counts[key] += n


async def call(session, tally, name, arguments):
    tally.add("calls")
    try:
        result = await session.call_tool(name, arguments)
    except Exception:  # noqa: BLE001 (a protocol error, a 503 from the queue, a dead upstream: all counted)
        tally.add("call_failures")
        return
    if result.isError:
        tally.add("tool_errors")


def random_call(rng):
    roll = rng.random()
    if roll < 0.15:
        return "work", {"sleep_ms": rng.randint(5, 40), "fail": True}
    if roll < 0.20:
        return rng.choice(MISSING_TOOLS), {}
    if roll < 0.40:
        return "echo", {"message": "hello " * rng.randint(1, 50)}
    return "work", {"cpu_ms": rng.randint(0, 3), "sleep_ms": rng.randint(5, 120),
                    "response_bytes": rng.choice([64, 512, 2048, 8192])}


async def short_session(url, rng, tally, mode="normal", go=None):
    client = types.Implementation(name=rng.choice(CLIENTS), version="1.0.0")
    async with streamable_http_client(url) as (read, write, _):
        async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT, client_info=client) as session:
            await session.initialize()
            tally.add("sessions")
            if mode == "tour":
                # Every unknown tool once, so the label overflow does not depend on the random draws.
                for name in MISSING_TOOLS:
                    await call(session, tally, name, {})
                return
            if mode == "burst":
                # One slow call per session, all at once (`go`): more than the gateway's concurrency and queue
                # admit. One call per session because the SDK tears a session down on a 503, abandoning the
                # session's other requests, and the meter leaks the queue place of a request abandoned while
                # queued (it then rejects everything as full); see the monitoring-e2e report.
                await go.wait()
                await call(session, tally, "work", {"sleep_ms": 400})
                return
            await session.list_tools()
            if rng.random() < 0.3:
                await session.send_ping()
            for _ in range(rng.randint(2, 5)):
                await call(session, tally, *random_call(rng))
                await asyncio.sleep(rng.uniform(0.05, 0.3))


async def guarded(coroutine, tally):
    try:
        await asyncio.wait_for(coroutine, SESSION_TIMEOUT)
    except Exception:  # noqa: BLE001 (refused connections while an agent is down are part of the test)
        tally.add("session_failures")


async def long_session(url, rng, tally, deadline):
    """Stays connected, calling echo every few seconds; reconnects when the upstream goes away."""
    while time.monotonic() < deadline:
        async def run():
            client = types.Implementation(name="e2e-long-lived", version="1.0.0")
            async with streamable_http_client(url) as (read, write, _):
                async with ClientSession(read, write, read_timeout_seconds=CALL_TIMEOUT, client_info=client) as session:
                    await session.initialize()
                    tally.add("sessions")
                    while time.monotonic() < deadline:
                        await call(session, tally, "echo", {"message": "still here"})
                        await asyncio.sleep(2)
        try:
            await asyncio.wait_for(run(), max(1.0, deadline - time.monotonic() + 5))
        except Exception:  # noqa: BLE001 (see guarded)
            tally.add("session_failures")
            await asyncio.sleep(1)


async def drive(endpoints, seconds, rate, seed):
    rng = random.Random(seed)
    tally = Tally()
    deadline = time.monotonic() + seconds
    tasks = [asyncio.create_task(long_session(url, random.Random(seed + i), tally, deadline))
             for i, url in enumerate(endpoints)]
    tasks.append(asyncio.create_task(guarded(short_session(endpoints[0], rng, tally, mode="tour"), tally)))
    next_burst = time.monotonic() + BURST_EVERY / 2
    while time.monotonic() < deadline:
        url = rng.choice(endpoints)
        tasks.append(asyncio.create_task(guarded(short_session(url, random.Random(rng.random()), tally), tally)))
        if time.monotonic() >= next_burst:
            # Bursts go to the first endpoint: the gateway, whose admission queue is small.
            go = asyncio.Event()
            tasks += [asyncio.create_task(guarded(short_session(endpoints[0], rng, tally, "burst", go), tally))
                      for _ in range(BURST_SESSIONS)]
            asyncio.get_running_loop().call_later(BURST_SETTLE, go.set)
            next_burst += BURST_EVERY
        await asyncio.sleep(rng.expovariate(rate))
    await asyncio.gather(*tasks)
    return tally.counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", action="append", required=True,
                        help="MCP URL; the first gets the bursts and the unknown-tool tour")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--sessions-per-second", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.seconds <= 3600 or not 0 < args.sessions_per_second <= 50:
        print("drive.py: --seconds must be 1..3600 and --sessions-per-second 0..50", file=sys.stderr)
        return 1
    # The SDK logs every refused connection at ERROR; the tally reports them.
    logging.basicConfig(level=logging.CRITICAL)
    counts = asyncio.run(drive(args.endpoint, args.seconds, args.sessions_per_second, args.seed))
    print(json.dumps(counts))
    succeeded = counts["calls"] - counts["call_failures"]
    if succeeded < args.seconds:
        print(f"drive.py: only {succeeded} calls succeeded in {args.seconds:.0f} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
