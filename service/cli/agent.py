"""`hwnas agent`: run a device agent that measures sub-networks for the service."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading


def register(subparsers: argparse._SubParsersAction) -> None:
    agent = subparsers.add_parser(
        "agent", help="measure sub-network latency on this device for a hwnas server"
    )
    agent.add_argument("--server", required=True, help="e.g. http://10.0.0.5:8000")
    agent.add_argument("--device", required=True, help="name of a registered agent device")
    agent.add_argument(
        "--token",
        default=os.environ.get("HWNAS_AGENT_TOKEN"),
        help="this device's token in the server's HWNAS_AGENT_TOKENS (default: $HWNAS_AGENT_TOKEN)",
    )
    agent.add_argument("--agent-id", default=None, help="default: hostname:pid")
    agent.add_argument("--claim", type=int, default=1, help="tasks to lease per claim (1..64)")
    agent.add_argument("--poll-s", type=float, default=2.0, help="wait between empty claims")
    agent.set_defaults(handler=_agent)


def _agent(args: argparse.Namespace) -> int:
    from service.agent.device_agent import AgentSetupError, DeviceAgent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.token:
        print("error: give --token or set HWNAS_AGENT_TOKEN", file=sys.stderr)
        return 2
    agent = DeviceAgent(
        args.server,
        args.device,
        args.token,
        agent_id=args.agent_id,
        claim_limit=args.claim,
        poll_s=args.poll_s,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        agent.run(stop)
    except AgentSetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
