#!/usr/bin/env python3
"""A gRPC core (grpcio) peer that the Rust integration tests drive as a subprocess.

It talks to the server under test with the real gRPC core HTTP/2 stack, so the
keepalive and enforcement behaviour is checked against the implementation our
users compare us with, not against our own client.

Subcommands (every result is one line on stdout, so a test can match lines):

``health --target HOST:PORT``
    ``grpc.health.v1.Health/Check`` for service ``""`` with a 5 s deadline.
    Prints ``STATUS <enum name>`` (e.g. ``STATUS SERVING``) and exits 0; on an
    RPC error prints ``ERROR <code name> <details>`` and exits 1.

``watch --target HOST:PORT --service NAME [--seconds 3]``
    ``grpc.health.v1.Health/Watch`` of ``NAME`` for ``--seconds``: prints
    ``WATCH_UPDATE <enum name>`` for each message, then ``WATCH_OPEN`` if the call
    was still open when the time was up (it is cancelled then), or
    ``WATCH_END <code name> <details>`` if the server ended it. Exits 0.

``flood-pings --target HOST:PORT [--keepalive-ms 1000] [--seconds 10]``
    An over-eager keepalive client: it opens a long-lived ``Health/Watch``
    stream (so the connection has an active stream) and lets gRPC core send a
    keepalive PING every ``--keepalive-ms``. A server with grpc-go enforcement
    answers with strikes and finally GOAWAY ENHANCE_YOUR_CALM ``too_many_pings``.
    Lines printed, in the order they are observed:

    * ``WATCH_UPDATE <status>`` for each Watch message (``SERVING`` first);
    * ``GOAWAY_FRAME error_code=<n>`` for every GOAWAY gRPC core received
      (11 is ENHANCE_YOUR_CALM), whatever its debug data;
    * ``GOAWAY too_many_pings`` when gRPC core reports a GOAWAY with debug data
      ``too_many_pings`` (the command then exits 0);
    * ``WATCH_END <code name>`` when the Watch call ends (UNAVAILABLE expected),
      followed by ``WATCH_DETAILS <details>`` unless it ended OK;
    * ``PINGS_SENT <n>``: PING frames gRPC core wrote (from its trace), last;
    * ``NO_GOAWAY`` if ``--seconds`` pass without that GOAWAY (exit 3).

    gRPC core does not tell the application about a GOAWAY; it logs it. So the
    command re-executes this script as a child with ``GRPC_VERBOSITY=debug`` and
    ``GRPC_TRACE=http_keepalive`` set before grpc is imported, and scans the
    child's stderr. gRPC core logs, at ERROR level (visible by default)::

        ipv4:127.0.0.1:PORT: Received a GOAWAY with error code ENHANCE_YOUR_CALM
        and debug data equal to "too_many_pings". Current keepalive time
        (before throttling): 1000ms

    (one line). Pass ``--verbose`` to copy the child's stderr to ours.

Exit codes: 0 success, 1 RPC error (health), 2 usage error, 3 no GOAWAY,
4 the child process failed unexpectedly.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import subprocess
import sys
import threading
import time

HEALTH_DEADLINE_S = 5.0
KEEPALIVE_TIMEOUT_MS = 5000
# Hidden subcommand: the re-executed child that holds the Watch open.
CHILD_SUBCOMMAND = "_flood-child"


def say(line: str) -> None:
    """Print one result line and flush it at once (the test reads a pipe)."""
    print(line, flush=True)


# --------------------------------------------------------------------------- health


def cmd_health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(args.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            resp = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service),
                timeout=HEALTH_DEADLINE_S,
            )
        except grpc.RpcError as err:
            say(f"ERROR {err.code().name} {err.details() or ''}".rstrip())
            return 1
    say("STATUS " + health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(args.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(health_pb2.HealthCheckRequest(service=args.service))
        timer = threading.Timer(args.seconds, call.cancel)
        timer.start()
        try:
            for resp in call:
                name = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
                say("WATCH_UPDATE " + name)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED:
                say("WATCH_OPEN")
            else:
                say(f"WATCH_END {err.code().name} {err.details() or ''}".rstrip())
        else:
            say("WATCH_END OK")
        finally:
            timer.cancel()
    return 0


# ---------------------------------------------------------------------- flood-pings


def flood_channel_options(keepalive_ms: int) -> list[tuple[str, int]]:
    """Channel args that make gRPC core really send a PING every keepalive_ms.

    - keepalive_time_ms / keepalive_timeout_ms: the keepalive itself.
    - keepalive_permit_without_calls: keep pinging even between calls.
    - http2.max_pings_without_data = 0: no cap on pings sent while no DATA is
      sent (default 2, after which core stops pinging until data is sent).
    - http2.min_time_between_pings_ms and
      http2.min_ping_interval_without_data_ms: the client-side ping rate limits
      of older gRPC core releases. Current ones (1.85) ignore them and keep a
      fixed 1 s floor between a client's pings: with --keepalive-ms below 1000
      core still pings once a second and traces "Ping delayed ... minimum
      wait:1000ms".
    - http2.bdp_probe = 0: no BDP pings, so every PING is a keepalive one.
    """
    return [
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_time_between_pings_ms", keepalive_ms),
        ("grpc.http2.min_ping_interval_without_data_ms", keepalive_ms),
        ("grpc.http2.bdp_probe", 0),
        # One connection only: do not let the channel silently reconnect and
        # retry the Watch on a fresh connection after the GOAWAY.
        ("grpc.enable_retries", 0),
    ]


def cmd_flood_child(args: argparse.Namespace) -> int:
    """Runs in the child (grpc imported with tracing on): hold a Watch open."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(
        args.target, options=flood_channel_options(args.keepalive_ms)
    )
    stub = health_pb2_grpc.HealthStub(channel)
    call = stub.Watch(
        health_pb2.HealthCheckRequest(service=args.service), timeout=args.seconds
    )
    try:
        for resp in call:
            say(
                "WATCH_UPDATE "
                + health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            )
        say("WATCH_END OK")
    except grpc.RpcError as err:
        say(f"WATCH_END {err.code().name}")
        say(f"WATCH_DETAILS {err.details()}")
    # Give core a moment to flush its log lines about the connection.
    time.sleep(0.3)
    channel.close()
    return 0


def _pump(stream, tag: str, events: "queue.Queue[tuple[str, str | None]]") -> None:
    for raw in iter(stream.readline, b""):
        events.put((tag, raw.decode("utf-8", "replace").rstrip("\r\n")))
    events.put((tag, None))


# http_keepalive tracer, gRPC core 1.85:
#   "CLIENT[0x...]: Ping 18157091795252938361 sent [ipv4:127.0.0.1:PORT]: ..."
_PING_SENT = re.compile(r"\bPing \d+ sent\b")
#   "ipv4:127.0.0.1:PORT: Got goaway [11] err=UNAVAILABLE:GOAWAY received; ..."
_GOT_GOAWAY = re.compile(r"Got goaway \[(\d+)\]")


def _is_too_many_pings(line: str, got_goaway: re.Match[str] | None) -> bool:
    """Only ENHANCE_YOUR_CALM (0xb) with debug data ``too_many_pings`` counts.

    gRPC core logs it at ERROR level on the client, whatever the tracers:
    ``...: Received a GOAWAY with error code ENHANCE_YOUR_CALM and debug data
    equal to "too_many_pings". Current keepalive time (before throttling): ...``;
    with http_keepalive tracing it also logs ``Got goaway [11] ... Debug Text:
    too_many_pings``.
    """
    if "too_many_pings" not in line:
        return False
    if "ENHANCE_YOUR_CALM" in line:
        return True
    return got_goaway is not None and got_goaway.group(1) == "11"


class FloodState:
    """What the parent has learnt from the child so far."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.goaway = False
        self.watch_ended = False
        self.pings = 0

    def on_stderr(self, line: str) -> None:
        if self.verbose:
            print(f"[grpc] {line}", file=sys.stderr, flush=True)
        if _PING_SENT.search(line):
            self.pings += 1
        m = _GOT_GOAWAY.search(line)
        if m:
            say(f"GOAWAY_FRAME error_code={m.group(1)}")
        if not self.goaway and _is_too_many_pings(line, m):
            self.goaway = True
            say("GOAWAY too_many_pings")

    def on_stdout(self, line: str) -> None:
        if line.startswith("WATCH_END"):
            self.watch_ended = True
        say(line)


def cmd_flood_pings(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env["GRPC_VERBOSITY"] = "debug"
    env["GRPC_TRACE"] = "http_keepalive"
    env["PYTHONUNBUFFERED"] = "1"
    child_cmd = [
        sys.executable,
        os.path.abspath(__file__),
        CHILD_SUBCOMMAND,
        "--target",
        args.target,
        "--keepalive-ms",
        str(args.keepalive_ms),
        "--seconds",
        str(args.seconds),
        "--service",
        args.service,
    ]
    child = subprocess.Popen(
        child_cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    events: queue.Queue[tuple[str, str | None]] = queue.Queue()
    for stream, tag in ((child.stdout, "out"), (child.stderr, "err")):
        threading.Thread(target=_pump, args=(stream, tag, events), daemon=True).start()

    state = FloodState(args.verbose)
    deadline = time.monotonic() + args.seconds + 5.0
    # After the GOAWAY, give the Watch a moment to end, then stop.
    stop_at: float | None = None
    open_streams = 2
    while open_streams:
        now = time.monotonic()
        limit = deadline if stop_at is None else min(deadline, stop_at)
        if now >= limit:
            break
        try:
            tag, line = events.get(timeout=limit - now)
        except queue.Empty:
            break
        if line is None:
            open_streams -= 1
        elif tag == "err":
            state.on_stderr(line)
            if state.goaway and stop_at is None:
                stop_at = time.monotonic() + 3.0
        else:
            state.on_stdout(line)

    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=3)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    say(f"PINGS_SENT {state.pings}")
    if state.goaway:
        return 0
    if child.returncode not in (0, -15) and not state.watch_ended:
        say(f"CHILD_FAILED {child.returncode}")
        say("NO_GOAWAY")
        return 4
    say("NO_GOAWAY")
    return 3


# ------------------------------------------------------------------------------ cli


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="peer.py", description="gRPC core peer for the integration tests"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    health = sub.add_parser("health", help="Health/Check once")
    health.add_argument("--target", required=True, help="HOST:PORT")
    health.add_argument("--service", default="", help="health service name")
    health.set_defaults(func=cmd_health)

    watch = sub.add_parser("watch", help="Health/Watch for a while")
    watch.add_argument("--target", required=True, help="HOST:PORT")
    watch.add_argument("--service", default="", help="health service name")
    watch.add_argument("--seconds", type=float, default=3.0)
    watch.set_defaults(func=cmd_watch)

    for name, func, hidden in (
        ("flood-pings", cmd_flood_pings, False),
        (CHILD_SUBCOMMAND, cmd_flood_child, True),
    ):
        p = sub.add_parser(
            name,
            help=argparse.SUPPRESS if hidden else "aggressive keepalive client",
        )
        p.add_argument("--target", required=True, help="HOST:PORT")
        p.add_argument("--keepalive-ms", type=int, default=1000)
        p.add_argument("--seconds", type=float, default=10.0)
        p.add_argument("--service", default="", help="health service name")
        p.add_argument(
            "--verbose", action="store_true", help="copy gRPC core's log to stderr"
        )
        p.set_defaults(func=func)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
