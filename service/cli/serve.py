"""`hwnas serve | worker | db upgrade | db current | demo`: run the service's processes."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from service.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("hwnas")


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="run the HTTP API (with an embedded worker)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--no-worker", action="store_true", help="API only; run `hwnas worker` processes instead"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes (uvicorn workers; PostgreSQL only). Each runs an embedded search "
        "worker unless --no-worker",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve a non-loopback address even without authentication (open to the network)",
    )
    serve.set_defaults(handler=_serve)

    worker = subparsers.add_parser("worker", help="run a search worker (claims queued jobs)")
    worker.set_defaults(handler=_worker)

    db = subparsers.add_parser("db", help="database schema commands")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply migrations (alembic upgrade)")
    upgrade.add_argument("--revision", default="head")
    upgrade.set_defaults(handler=_db_upgrade)
    current = db_commands.add_parser("current", help="print the schema revision and the head")
    current.set_defaults(handler=_db_current)

    demo = subparsers.add_parser(
        "demo", help="start the service, run a search on the built-in supernet, show the front"
    )
    demo.add_argument("--budget", type=int, default=60)
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    demo.add_argument("--data-dir", type=Path, default=None, help="default: a temporary directory")
    demo.add_argument(
        "--macs-max", type=float, default=None, help="MACs constraint (default: auto)"
    )
    demo.add_argument("--port", type=int, default=0, help="0 picks a free port")
    demo.add_argument("--checkpoint", default=None, help="supernet weights (default: shipped)")
    demo.add_argument("--timeout-s", type=float, default=900)
    demo.set_defaults(handler=_demo)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _serve(args: argparse.Namespace) -> int:
    from service.db.engine import upgrade_database

    _logging()
    settings = Settings()
    if args.no_worker:
        settings = settings.model_copy(update={"embedded_worker": False})
    url = settings.resolved_database_url
    if args.workers < 1:
        log.error("--workers must be 1 or more")
        return 2
    if args.workers > 1 and url.startswith("sqlite"):
        log.error(
            "--workers %d needs PostgreSQL: SQLite takes one writer at a time and each process "
            "would hold its own file handle and embedded worker. Set HWNAS_DATABASE_URL="
            "postgresql+psycopg://… (and run `hwnas db upgrade`), or serve one process",
            args.workers,
        )
        return 2
    if url.startswith("sqlite"):  # the embedded default: first run creates the file via alembic
        upgrade_database(url)
    refusal = open_to_network(settings, args.host)
    if refusal and not args.insecure:
        print(f"error: {refusal}; or pass --insecure to serve it open anyway", file=sys.stderr)
        return 2
    if refusal:
        log.warning("--insecure: %s", refusal)
    _run_uvicorn(settings, args)
    return 0


def _run_uvicorn(settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from service.app import create_app

    serving = {
        "host": args.host,
        "port": args.port,
        "log_level": "info",
        # Longer than any client keeps an idle connection for reuse: closing one a client is
        # sending on resets it (the client sees ReadError / "server disconnected").
        "timeout_keep_alive": settings.keep_alive_s,
        "timeout_graceful_shutdown": settings.graceful_shutdown_s,
    }
    if args.workers == 1:
        uvicorn.run(_long_lived(create_app(settings)), **serving)
        return
    if args.no_worker:  # the worker processes build their own Settings from the environment
        os.environ["HWNAS_EMBEDDED_WORKER"] = "false"
    uvicorn.run("service.cli.serve:served_app", factory=True, workers=args.workers, **serving)


def served_app() -> FastAPI:
    """The app of each `hwnas serve --workers N` process (uvicorn's factory)."""
    from service.app import create_app

    return _long_lived(create_app())


def _long_lived(app: FastAPI) -> FastAPI:
    """Everything imported by now (torch, numpy, the routes: ~380,000 objects) lives as long as
    the server. Left to the collector, every full collection walks all of it, 100–300 ms with
    the event loop stopped on this 2-core host: most of a poll's p99 under load
    (docs/benchmarks.md). Frozen, a collection walks only what was made since."""
    gc.collect()
    gc.freeze()
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def open_to_network(settings: Settings, host: str) -> str | None:
    """Why serving on `host` would expose an unauthenticated API; None when it would not."""
    if is_loopback(host):
        return None
    from service.api.auth import auth_enabled
    from service.db.engine import check_schema_current, make_engine

    engine = make_engine(settings.resolved_database_url)
    try:
        check_schema_current(engine)
        with Session(engine) as session:
            if auth_enabled(settings, session):
                return None
    finally:
        engine.dispose()
    return (
        f"refusing to serve {host} without authentication: anyone reaching the port could "
        "register, submit, cancel and read everything. Set HWNAS_ADMIN_TOKEN or create a token "
        "(`hwnas tokens create --scope admin`)"
    )


def _worker(_args: argparse.Namespace) -> int:
    from service.db.engine import check_schema_current, make_engine, make_session_factory
    from service.worker.runner import run_worker

    _logging()
    settings = Settings()
    engine = make_engine(settings.resolved_database_url, application_name="hwnas-worker")
    check_schema_current(engine)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        run_worker(make_session_factory(engine), settings, stop)
    finally:
        engine.dispose()
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from service.db.engine import upgrade_database

    settings = Settings()
    upgrade_database(settings.resolved_database_url, args.revision)
    print(f"database at {args.revision}: {_safe_url(settings.resolved_database_url)}")
    return 0


def _db_current(_args: argparse.Namespace) -> int:
    from alembic.runtime.migration import MigrationContext

    from service.db.engine import head_revision, make_engine

    url = Settings().resolved_database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    print(f"current: {current or 'none'}  head: {head_revision(url)}")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _demo(args: argparse.Namespace) -> int:
    from service.cli.demo import run_demo

    return run_demo(
        budget=args.budget,
        out_dir=args.out,
        data_dir=args.data_dir,
        macs_max=args.macs_max,
        port=args.port,
        timeout_s=args.timeout_s,
        checkpoint=args.checkpoint,
    )
