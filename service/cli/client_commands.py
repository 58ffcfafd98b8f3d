"""`hwnas jobs | supernets | devices`: talk to a running server through `service.client`.

Optuna's conventions: `--server URL` (or `HWNAS_SERVER`, default http://127.0.0.1:8000), an
optional `--token` (or `HWNAS_TOKEN`) sent as a bearer token, and `-f json|table|csv`; `-f json`
prints the API's objects as they are. API errors print `error: <code>: <detail>`, exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from service.cli.output import FORMATS, emit
from service.client import DEFAULT_SERVER, Client, HwnasError
from service.jobs.views import JobOut, ParetoOut

JOB_COLUMNS = (
    "id",
    "status",
    "validations_used",
    "budget",
    "progress",
    "hypervolume",
    "objectives",
    "constraints",
    "created_at",
    "finished_at",
)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("HWNAS_SERVER", DEFAULT_SERVER),
        help="the service's URL (default: $HWNAS_SERVER or %(default)s)",
    )
    common.add_argument(
        "--token", default=os.environ.get("HWNAS_TOKEN"), help="bearer token ($HWNAS_TOKEN)"
    )
    common.add_argument("-f", "--format", choices=FORMATS, default="table")
    return common


def register(subparsers: argparse._SubParsersAction) -> None:
    common = _common()
    jobs = subparsers.add_parser("jobs", help="search jobs on a server (submit, watch, results)")
    commands = jobs.add_subparsers(dest="jobs_command", required=True)
    _register_submit(commands, common)
    listing = commands.add_parser("list", parents=[common], help="jobs, newest first")
    listing.add_argument("--status", default=None, help="only jobs in this status")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=_run(_jobs_list))
    for name, handler, text in (
        ("show", _jobs_show, "a job's status and iterations"),
        ("watch", _jobs_watch, "a progress bar of validations with the HV until the job ends"),
        ("pareto", _jobs_pareto, "the job's Pareto front (or the closest points)"),
        ("cancel", _jobs_cancel, "cancel a queued or running job"),
        ("export", _jobs_export, "every candidate as JSON or CSV (-f json|csv)"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("job_id", type=int)
        if name == "watch":
            command.add_argument("--poll-s", type=float, default=1.0)
        if name == "export":
            command.add_argument("-o", "--output", type=Path, default=None, help="default stdout")
        command.set_defaults(handler=_run(handler))
    for area, handler in (("supernets", _supernets_list), ("devices", _devices_list)):
        parser = subparsers.add_parser(area, help=f"{area} registered on a server")
        area_commands = parser.add_subparsers(dest=f"{area}_command", required=True)
        area_list = area_commands.add_parser("list", parents=[common], help=f"the {area}")
        area_list.set_defaults(handler=_run(handler))


def add_supernet_register(commands: argparse._SubParsersAction) -> None:
    """`hwnas supernet register`: beside the local `hwnas supernet` commands, against a server."""
    command = commands.add_parser(
        "register",
        parents=[_common()],
        help="register a supernet on a server, uploading its checkpoint file",
    )
    command.add_argument("name", help="the supernet's name on the server")
    command.add_argument("family", help="its family, e.g. ofa-mbv3-w1.0")
    where = command.add_mutually_exclusive_group()
    where.add_argument("--checkpoint-file", type=Path, help="a local checkpoint file to upload")
    where.add_argument("--checkpoint", help="a checkpoint's name in the server's checkpoint dir")
    command.add_argument("--image-folder", help="image folder's name in the server's image dir")
    command.add_argument("--calibration-folder", help="separate calibration images (same dir)")
    command.add_argument("--calibration-images", type=int, help="BN calibration images (2000)")
    command.add_argument("--evaluation-images", type=int, help="at most this many to evaluate")
    command.add_argument("--data-seed", type=int, help="seed of the drawn splits")
    command.add_argument("--resolutions", help="comma-separated, e.g. 224 (a table's resolution)")
    command.set_defaults(handler=_run(_supernet_register))


def _supernet_register(client: Client, args: argparse.Namespace) -> int:
    data = {
        "image_folder": args.image_folder,
        "calibration_folder": args.calibration_folder,
        "calibration_images": args.calibration_images,
        "evaluation_images": args.evaluation_images,
        "seed": args.data_seed,
        "resolutions": [int(r) for r in args.resolutions.split(",")] if args.resolutions else None,
    }
    data = {k: v for k, v in data.items() if v is not None}
    supernet = client.register_supernet(
        args.name,
        args.family,
        checkpoint=args.checkpoint,
        checkpoint_path=args.checkpoint_file,
        data=data or None,
    )
    row = supernet.model_dump(mode="json")
    row["macs"], row["params"] = row["exact_ranges"].get("macs"), row["exact_ranges"].get("params")
    columns = ("id", "name", "family", "dataset", "checkpoint_sha256", "n_genes", "macs", "params")
    emit(args.format, row, [row], columns)
    return 0


def _register_submit(commands: argparse._SubParsersAction, common: Any) -> None:
    submit = commands.add_parser("submit", parents=[common], help="queue a search job")
    submit.add_argument("--supernet", required=True, help="name of a registered supernet")
    submit.add_argument(
        "--objective", action="append", required=True, help="metric[@device]:max|min, repeatable"
    )
    submit.add_argument(
        "--constraint", action="append", default=[], help="metric[@device]<=value, repeatable"
    )
    submit.add_argument("--budget", type=int, default=60, help="validations to spend")
    submit.add_argument("--tactic", default=None, help="linas, evolutionary or random")
    submit.add_argument("--seed", type=int, default=None)
    submit.add_argument("--algorithm", default=None)
    submit.add_argument("--batch-size", type=int, default=None)
    submit.add_argument("--population-size", type=int, default=None)
    submit.add_argument("--initial-size", type=int, default=None)
    submit.add_argument("--predictor", action="append", default=None, help="repeatable")
    submit.add_argument("--wait", action="store_true", help="then watch it until it ends")
    submit.set_defaults(handler=_run(_jobs_submit))


def _run(handler: Any) -> Any:
    """The command with a client; API errors become one line on stderr and exit status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            with Client(args.server, token=args.token) as client:
                return int(handler(client, args) or 0)
        except HwnasError as exc:
            print(f"error: {exc.error}: {exc.detail}", file=sys.stderr)
            return 1

    return run


def _job_row(job: JobOut) -> dict[str, Any]:
    last = job.iterations[-1] if job.iterations else None
    return {
        **job.model_dump(mode="json"),
        "hypervolume": last.hypervolume if last else None,
        "objectives": job.spec.get("objectives", []),
        "constraints": job.spec.get("constraints", []),
    }


def _emit_jobs(args: argparse.Namespace, jobs: list[JobOut], single: bool) -> None:
    raw = [j.model_dump(mode="json") for j in jobs]
    emit(args.format, raw[0] if single else raw, [_job_row(j) for j in jobs], JOB_COLUMNS)


def _jobs_submit(client: Client, args: argparse.Namespace) -> int:
    job = client.submit_job(
        args.supernet,
        args.objective,
        args.constraint,
        args.budget,
        tactic=args.tactic,
        seed=args.seed,
        algorithm=args.algorithm,
        batch_size=args.batch_size,
        population_size=args.population_size,
        initial_size=args.initial_size,
        predictors=args.predictor,
    )
    out = job.wait(progress=args.format != "json") if args.wait else job.last
    _emit_jobs(args, [out], single=True)
    return 0 if not args.wait or out.status == "succeeded" else 1


def _jobs_list(client: Client, args: argparse.Namespace) -> int:
    jobs = [j for j in client.jobs(args.limit) if args.status in (None, j.status)]
    _emit_jobs(args, jobs, single=False)
    return 0


def _jobs_show(client: Client, args: argparse.Namespace) -> int:
    _emit_jobs(args, [client.job(args.job_id).last], single=True)
    return 0


def _jobs_watch(client: Client, args: argparse.Namespace) -> int:
    out = client.job(args.job_id).wait(progress=args.format != "json", poll_s=args.poll_s)
    _emit_jobs(args, [out], single=True)
    return 0 if out.status == "succeeded" else 1


def _jobs_cancel(client: Client, args: argparse.Namespace) -> int:
    _emit_jobs(args, [client.job(args.job_id).cancel()], single=True)
    return 0


def pareto_rows(pareto: ParetoOut) -> tuple[list[dict[str, Any]], list[str]]:
    points = pareto.points if pareto.feasible else pareto.closest
    metrics = sorted({m for p in points for m in p.metrics})
    rows = [
        {
            "candidate_id": p.id,
            "iteration": p.iteration,
            "origin": p.origin,
            "pareto_role": p.pareto_role,
            **{m: p.metrics[m].value for m in p.metrics},
            **{f"{m}_source": p.metrics[m].method or p.metrics[m].source for m in p.metrics},
        }
        for p in points
    ]
    columns = ["candidate_id", "iteration", "origin", "pareto_role", *metrics]
    return rows, columns + [f"{m}_source" for m in metrics]


def _jobs_pareto(client: Client, args: argparse.Namespace) -> int:
    pareto = client.job(args.job_id).pareto()
    rows, columns = pareto_rows(pareto)
    if args.format == "table" and not pareto.feasible:
        print("no feasible point yet; the closest points:")
    emit(args.format, pareto.model_dump(mode="json"), rows, columns)
    return 0


def _jobs_export(client: Client, args: argparse.Namespace) -> int:
    if args.format == "table":
        print("error: export writes -f json or -f csv", file=sys.stderr)
        return 2
    exported = client.job(args.job_id).export(args.format)
    if args.format == "json":
        import json

        exported = json.dumps(exported, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(exported)
    else:
        args.output.write_text(exported)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _supernets_list(client: Client, args: argparse.Namespace) -> int:
    supernets = [s.model_dump(mode="json") for s in client.supernets()]
    columns = ("id", "name", "family", "dataset", "checkpoint_sha256", "created_at")
    emit(args.format, supernets, supernets, columns)
    return 0


def _devices_list(client: Client, args: argparse.Namespace) -> int:
    devices = [d.model_dump(mode="json") for d in client.devices()]
    emit(args.format, devices, devices, ("id", "name", "kind", "can_measure_latency", "descriptor"))
    return 0
