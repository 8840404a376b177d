"""The ``placespend`` command: demo, db, load, run, serve.

Every command is a thin call into ``store``, ``placespend.load`` or ``placespend.runs``; errors
from them are printed as one line naming the cause and the fix, with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from domain.errors import BadRequest, PlacespendError, Rejected, SetupError
from placespend.settings import Settings

# Logs and CI have no terminal width; give tables room there instead of rich's 80 columns.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)


@contextmanager
def step(label: str) -> Iterator[None]:
    """Show a spinner while a long step runs, then its time."""
    start = time.perf_counter()
    with console.status(f"{label}..."):
        yield
    console.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - start:.1f}s)[/]")


def _database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    from store import cluster

    with console.status("Starting the project PostGIS..."):
        return cluster.resolve_database_url()


def _migrate(url: str) -> list[str]:
    from store.db import connect
    from store.migrate import migrate

    with connect(url) as conn:
        return migrate(conn, api_password=Settings().api_db_password)


def _cli_actor() -> str:
    """Who the CLI acts for, in the audit log and run records: ``cli:USER``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


#: CLI commands that write, audited like HTTP writes (command -> action name).
_AUDITED = {"load": "load", "run": "run", "publish": "publish", "keys": "keys"}


def _audit(args: argparse.Namespace, settings: Settings, outcome: str,
           detail: str | None) -> None:
    """Append the audit entry of a CLI write (quietly skipped when no database answers)."""
    import socket

    from placespend import audit
    from store.db import connect

    cmd = args.command
    if cmd not in _AUDITED or (cmd == "keys" and args.action == "list"):
        return
    action = {"load": f"load:{getattr(args, 'load_kind', '')}",
              "keys": f"key:{getattr(args, 'action', '')}"}.get(cmd, _AUDITED[cmd])
    target = (getattr(args, "file", None) or getattr(args, "name", None)
              or (str(args.run_id) if getattr(args, "run_id", None) else None)
              or (str(getattr(args, "made_run", "")) or None))
    url = settings.database_url or os.environ.get("DATABASE_URL")
    try:
        if not url:
            from store import cluster

            url = cluster.resolve_database_url()
        with connect(url) as conn:
            audit.record(conn, action=action, outcome=outcome, actor=_cli_actor(),
                         role="admin", target=target, detail=detail,
                         client=socket.gethostname())
    except Exception:  # noqa: BLE001 - a missing database was the error already reported
        pass


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    """Start, stop or migrate the database."""
    from store import cluster

    if args.action == "stop":
        stopped = cluster.stop()
        console.print("stopped" if stopped else "was not running")
        return 0
    url = _database_url(settings)
    if args.action == "start":
        console.print(f"PostGIS running: {url}")
        return 0
    applied = _migrate(url)
    console.print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
    return 0


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    """Load a file (``placespend load KIND FILE [options]``), or the embedded data."""
    from placespend import load
    from store.db import connect

    url = _database_url(settings)
    _migrate(url)
    with connect(url) as conn:
        if args.load_kind == "embedded":
            done = load.load_embedded(conn, step=step)
        else:
            loader = load.LOADERS[args.load_kind]
            given = {name: getattr(args, name, None) for name in loader.options.model_fields}
            opts = load.options_from_text(loader.options, {
                k: (v if isinstance(v, list) else ["true"] if v is True else [str(v)])
                for k, v in given.items() if v is not None and v is not False})
            path = Path(args.file)
            done = [loader.load(conn, load.Upload(path, path.name), opts, step=step)]
    for item in done:
        mark = "[green]stored[/]" if item.created else "[dim]already loaded[/]"
        console.print(f"{mark} batch {item.batch_id}: {escape(item.summary)}")
        for guess in item.details.get("guesses", []):
            console.print(f"  [yellow]guessed[/] {escape(guess)}")
        for repair in item.details.get("repairs", [])[:10]:
            console.print(f"  [yellow]repaired[/] {repair['code']}: area changed by "
                          f"{repair['area_changed_m2']:.3g} m²")
    return 0


def cmd_crosswalk(args: argparse.Namespace, settings: Settings) -> int:
    """Write each source unit's share in each target unit as CSV (stdout or --out)."""
    from placespend.runs import crosswalk_table
    from store.db import connect

    with connect(_database_url(settings)) as conn:
        weights = crosswalk_table(conn, args.source, args.target, basis=args.basis,
                                  zone_set=args.zones, step=step)
    text = weights.to_csv(index=False)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        console.print(f"{len(weights):,} pairs written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    """Create, revoke or list the API keys that writes over HTTP need."""
    from placespend import keys
    from store import keys as store_keys
    from store.db import connect

    if args.action != "list" and not args.name:
        raise BadRequest(f"`placespend keys {args.action}` needs the key's name",
                         f"e.g. placespend keys {args.action} hackney-finance")
    url = _database_url(settings)
    _migrate(url)
    with connect(url) as conn:
        if args.action == "create":
            key = keys.create(conn, args.name, args.role, bodies=args.body,
                              places=args.place, created_by=_cli_actor())
            console.print(f"key {args.name!r} created. It is shown only now; keep it safe:")
            print(key)
        elif args.action == "revoke":
            keys.revoke(conn, args.name)
            console.print(f"key {args.name!r} revoked")
        else:
            table = Table(title="API keys (only their first characters are kept readable)")
            for col in ("name", "prefix", "role", "scope", "created", "revoked"):
                table.add_column(col)
            for k in store_keys.list_keys(conn):
                scope = ", ".join([*(k["bodies"] or []), *(k["places"] or [])]) or "all"
                table.add_row(k["name"], k["prefix"] + "…", k["role"],
                              scope if k["role"] == "editor" else "",
                              f"{k['created_at']:%Y-%m-%d %H:%M}",
                              "" if k["revoked_at"] is None else f"{k['revoked_at']:%Y-%m-%d}")
            console.print(table)
    return 0


#: The flags of options given as repeated NAME=VALUE pairs: option -> (flag, metavar, help).
_PAIR_OPTIONS = {
    "body_areas": ("--body-area", "CODE=AREA",
                   "RS: the area code of a body whose rows carry none (repeatable)"),
    "columns": ("--column", "OURS=THEIRS",
                "lines: read our column OURS from the file's column THEIRS (repeatable)"),
    "constants": ("--constant", "NAME=VALUE",
                  "lines: give every row NAME=VALUE where the file has no such column"),
}


def _load_options(p: argparse.ArgumentParser, model: type) -> None:
    """One --flag per field of a load options model (the HTTP form takes the same names)."""
    from placespend.load import field_shape

    for name, f in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        text = f.description or ""
        shape = field_shape(model, name)
        if shape == "switch":
            p.add_argument(flag, dest=name, action="store_true", help=text)
        elif shape == "list":
            p.add_argument(flag.removesuffix("s"), dest=name, action="append", metavar="SET",
                           help=text + " (repeatable)")
        elif shape == "pairs":
            flag, meta, text = _PAIR_OPTIONS[name]
            p.add_argument(flag, dest=name, action="append", metavar=meta, help=text)
        else:
            p.add_argument(flag, dest=name, required=f.is_required(),
                           help=text + ("" if f.is_required() else f" (default: {f.default})"))


def _print_problems(exc: Rejected) -> None:
    """A rejected upload as a table: where, field, value, reason, fix."""
    table = Table(title=f"{exc.total} problem(s) in {exc.what}; nothing was stored",
                  show_lines=False)
    for col in ("where", "field", "value", "reason", "fix"):
        table.add_column(col, overflow="fold")
    for prob in exc.problems[:50]:
        table.add_row(prob.where, prob.field or "", "" if prob.value is None else prob.value,
                      prob.reason, prob.fix)
    console.print(table)
    if exc.total > 50:
        console.print(f"... and {exc.total - 50} more")


def _print_conservation(conn: object, run_id: int, conservation: dict) -> None:
    from store.runs import run_lines

    lines = run_lines(conn, run_id)  # type: ignore[arg-type]
    table = Table(title=f"Conservation report of run {run_id} (pence)")
    for col in ("body", "line", "amount", "allocated", "method", "proxy", "note"):
        table.add_column(col, justify="right" if col in ("amount", "allocated") else "left")
    for o in lines.itertuples():
        table.add_row(
            escape(o.body), escape(o.line), f"{o.amount_pence:,}", f"{o.allocated_pence:,}",
            o.method if isinstance(o.method, str) else "-", escape(o.proxy),
            escape(o.reason if isinstance(o.reason, str) else ""),
        )
    console.print(table)
    passed = int(conservation.get("passed_on_pence", 0))
    netted = int(conservation.get("netted_pence", 0))
    for rule in conservation.get("netting", []):
        console.print(f"netting rule {escape(rule['rule'])} ({rule['action']}): "
                      f"{rule['netted_pence']:,}p not counted twice - "
                      f"{escape(rule['rationale'])}")
    if passed or netted:
        console.print(
            f"reported {conservation['reported_pence']:,}p = {passed:,}p passed on to other "
            f"bodies (counted where they spend it) + {netted:,}p netted (counted in another "
            f"dataset) + {conservation['total_pence']:,}p to place"
        )
    console.print(
        f"total {conservation['total_pence']:,}p = allocated "
        f"{conservation['allocated_pence']:,}p + unallocated "
        f"{conservation['unallocated_pence']:,}p"
    )


def _print_publications(conn: object, run_id: int) -> None:
    from store.runs import get_run

    for c in get_run(conn, run_id)["collections"]:  # type: ignore[arg-type]
        state = "public" if c["current"] else "not public"
        console.print(
            f"  {c['id']} ({state}): {c['allocated_pence']:,}p inside its units, "
            f"{c['outside_pence']:,}p outside them"
        )


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Compute a year's run (publications derived, none made public unless --publish)."""
    from placespend import distributed
    from placespend.runs import DEFAULT_TARGETS, RunRequest, make_run_recorded
    from store.db import connect
    from store.runs import get_run

    url = _database_url(settings)
    kwargs: dict = {"financial_year": args.year,
                    "target_sets": tuple(args.to) if args.to else DEFAULT_TARGETS}
    if args.proxy_table:
        kwargs["proxy_table"] = Path(args.proxy_table)
    if getattr(args, "netting_rules", None):
        kwargs["netting_rules"] = (None if args.netting_rules == "none"
                                   else Path(args.netting_rules))
    kwargs["basis"] = getattr(args, "basis", "served")
    kwargs["finer"] = getattr(args, "finer", None)
    kwargs["finer_proxy"] = getattr(args, "finer_proxy", None)
    client = distributed.connect(settings.dask_scheduler)
    try:
        if client is not None:
            console.print(f"apportioning on the dask cluster at {client.scheduler.address}")
        request = RunRequest(**kwargs)
        result = make_run_recorded(lambda: connect(url), request, by=_cli_actor(), step=step,
                                   client=client, then_publish=args.publish)
        args.made_run = result.run_id
        state = "computed" if result.created else "already computed (same inputs)"
        console.print(f"run {result.run_id} {state}")
        with connect(url) as conn:
            public = [c["id"] for c in get_run(conn, result.run_id)["collections"]
                      if c["current"]]
            if args.publish:
                console.print(f"published: {', '.join(public)}")
            elif public:
                console.print(f"already public: {', '.join(public)}")
            else:
                console.print(
                    f"not published: the public collections are unchanged. See it at "
                    f"/collections/{{id}}?run={result.run_id}, publish it with "
                    f"`placespend publish {result.run_id}`"
                )
            if args.report:
                _print_conservation(conn, result.run_id, result.conservation)
            _print_publications(conn, result.run_id)
    finally:
        if client is not None:
            client.close()
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute each run's and publication's hash; exit 1 if any differs from its seal."""
    from placespend.runs import verify
    from store.db import connect

    with connect(_database_url(settings)) as conn:
        with step("Recomputing results hashes"):
            checks = verify(conn, args.run_ids or None)
    table = Table(title="Results seals")
    for col in ("run", "publication", "sealed", "now", "state"):
        table.add_column(col)
    for c in checks:
        colour = {"ok": "green", "unsealed": "yellow"}.get(c["state"], "red")
        table.add_row(str(c["run_id"]), c["collection_id"] or "(the run)",
                      (c["sealed"] or "")[:16], c["now"][:16], f"[{colour}]{c['state']}[/]")
    console.print(table)
    bad = [c for c in checks if c["state"] == "changed"]
    unsealed = sum(c["state"] == "unsealed" for c in checks)
    console.print(f"{len(checks) - len(bad) - unsealed} of {len(checks)} match their seal"
                  + (f"; {unsealed} made before seals (not checkable)" if unsealed else "")
                  + (f"; [red]{len(bad)} CHANGED[/]" if bad else ""))
    return 1 if bad else 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    """Make a run the one its public collections serve."""
    from placespend.runs import publish
    from store.db import connect

    with connect(_database_url(settings)) as conn:
        fit = "best_fit" if args.best_fit else "split"
        if args.best_fit and not args.to:
            raise BadRequest("a best-fit publication needs its target sets",
                             "name them: `placespend publish RUN --to SET --best-fit`")
        ids = publish(conn, args.run_id, args.to or None, step=step, fit=fit, by=_cli_actor())
        console.print(f"run {args.run_id} published: {', '.join(ids)}")
        _print_publications(conn, args.run_id)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the API and map."""
    import signal

    import uvicorn

    from api.app import create_app
    from api.observe import configure_logging

    settings = settings.model_copy(
        update={"database_url": _database_url(settings), "host": args.host, "port": args.port}
    )
    _check_port(args.host, args.port)
    configure_logging(settings.log_format)
    console.print(f"Serving API and map at http://{args.host}:{args.port} (map: /map)")
    app = create_app(settings)

    def stopped(signum: int, frame: object) -> None:
        raise SystemExit(0)

    # Our own access log (placespend.access) instead of uvicorn's, in our log format. On
    # SIGTERM (or Ctrl-C) uvicorn stops taking connections and gives the requests in flight
    # shutdown_grace_seconds to finish; it then raises the signal again with the handler it
    # found, this one, so a stop asked for is a clean exit (status 0), not a kill.
    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                    log_config=None, access_log=False,
                    timeout_graceful_shutdown=settings.shutdown_grace_seconds)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _check_port(host: str, port: int) -> None:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise SetupError(
                f"port {port} on {host} is in use ({exc.strerror})",
                f"stop what is using it, or choose another: --port {port + 1}",
            ) from exc


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Everything: database, migrations, embedded data, the 2013-14 and 2014-15 runs, serve."""
    from placespend.runs import DEFAULT_TARGETS

    start = time.perf_counter()
    _check_port(args.host, args.port)
    args.load_kind = "embedded"
    cmd_load(args, settings)
    # the whole public pound: both years on the served basis, 2014-15 (the year with GP
    # payments, at each practice) on the delivered basis too; see /runs/{id}/lines
    for year, basis in (("2013-14", "served"), ("2014-15", "served"), ("2014-15", "delivered")):
        args.year, args.proxy_table, args.report, args.publish, args.to, args.best_fit = (
            year, None, False, True, None, False)
        args.netting_rules, args.basis, args.finer, args.finer_proxy = None, basis, None, None
        cmd_run(args, settings)
        if (year, basis) == ("2014-15", "served"):
            # and by ONS-style best fit (whole LSOAs), for comparison with official tables
            args.run_id, args.to, args.best_fit = args.made_run, list(DEFAULT_TARGETS), True
            cmd_publish(args, settings)
    console.print(f"[bold]Ready in {time.perf_counter() - start:.0f}s.[/]")
    return cmd_serve(args, settings)


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(
        prog="placespend",
        description="Apportion public spend to wards and neighbourhoods, and serve it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def serving(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1", help="address to listen on")
        p.add_argument("--port", type=int, default=8000, help="port to listen on")

    demo = sub.add_parser("demo", help="set up, load Hackney/London, apportion 2014-15, serve")
    serving(demo)
    demo.set_defaults(func=cmd_demo)

    db = sub.add_parser("db", help="the project database")
    db.add_argument("action", choices=["start", "stop", "migrate"])
    db.set_defaults(func=cmd_db)

    from placespend.load import LOADERS

    load = sub.add_parser("load", help="load a file: " + ", ".join(LOADERS)
                          + " (`placespend load embedded`: the embedded London data)")
    kinds = load.add_subparsers(dest="load_kind", required=True)
    kinds.add_parser("embedded", help="the embedded data (what the demo loads)").set_defaults(
        func=cmd_load)
    for kind, loader in LOADERS.items():
        k = kinds.add_parser(kind, help=(loader.options.__doc__ or "").strip().splitlines()[0])
        k.add_argument("file", help="the file to load")
        _load_options(k, loader.options)
        k.set_defaults(func=cmd_load)

    run = sub.add_parser(
        "run", help="apportion a year's spend (a run; public collections change only with "
        "--publish or `placespend publish`)")
    run.add_argument("--year", default="2014-15", help="financial year, e.g. 2014-15")
    run.add_argument(
        "--proxy-table",
        help="CSV with columns [body,]line,proxy,[catchment,]rationale and one '*' row "
        "(default: the embedded table)",
    )
    run.add_argument("--netting-rules",
                     help="CSV of netting rules (which money two datasets both report; "
                     "default: the embedded rules); 'none' counts every line whole")
    run.add_argument("--basis", choices=["served", "delivered"], default="served",
                     help="where money paid to a site counts: over the residents its "
                     "catchment serves (default), or at the site")
    run.add_argument("--finer", metavar="SET",
                     help="share each small area a ward cuts by the finer units of SET it "
                     "holds (e.g. hackney-oa-2011, Output Areas), not by land area")
    run.add_argument("--finer-proxy", metavar="PROXY",
                     help="a proxy on the --finer set to weight its units by (default: each "
                     "unit counts 1)")
    run.add_argument("--to", action="append", metavar="SET",
                     help="boundary set to publish through (repeatable; default: Hackney's "
                     "and London's 2014 wards)")
    run.add_argument("--publish", action="store_true",
                     help="make this run the one the public collections serve")
    run.add_argument("--report", action="store_true", help="print the conservation report")
    run.set_defaults(func=cmd_run)

    pub = sub.add_parser("publish", help="make a run the one its public collections serve")
    pub.add_argument("run_id", type=int, help="the run (see `placespend run` or GET /runs)")
    pub.add_argument("--to", action="append", metavar="SET",
                     help="boundary set to publish through (repeatable; default: every set "
                     "the run is already published to)")
    pub.add_argument("--best-fit", action="store_true",
                     help="publish ONS-style best fit (each LSOA wholly in one unit) beside the "
                     "split figures, as <collection>-best-fit")
    pub.set_defaults(func=cmd_publish)

    cross = sub.add_parser("crosswalk", help="each unit of one boundary set split over the "
                           "units of another, by residents or area, as CSV")
    cross.add_argument("source", help="the set to re-express, e.g. hackney-wards-2013")
    cross.add_argument("target", help="the set to express it on, e.g. hackney-wards-2014")
    cross.add_argument("--basis", choices=["population", "area"], default="population")
    cross.add_argument("--zones", default="london-lsoa-2011",
                       help="the small areas cut by the source units (default: %(default)s)")
    cross.add_argument("--out", help="write the CSV here (default: standard output)")
    cross.set_defaults(func=cmd_crosswalk)

    keys = sub.add_parser("keys", help="API keys for writes over HTTP (uploads, runs, "
                          "publishing, neighbourhoods, keys)")
    keys.add_argument("action", choices=["create", "revoke", "list"])
    keys.add_argument("name", nargs="?", help="the key's name (create, revoke)")
    keys.add_argument("--role", choices=["viewer", "editor", "admin"], default="editor",
                      help="viewer: no writes; editor: loads, runs, publishing, "
                      "neighbourhoods; admin: everything, and keys and the audit log "
                      "(default: %(default)s)")
    keys.add_argument("--body", action="append", default=[], metavar="SLUG",
                      help="scope an editor to this body's spend and transfers (repeatable)")
    keys.add_argument("--place", action="append", default=[], metavar="SET",
                      help="scope an editor to this boundary or neighbourhood set "
                      "(repeatable)")
    keys.set_defaults(func=cmd_keys)

    verify = sub.add_parser("verify", help="recompute every run's and publication's results "
                            "hash and compare it with the seal stored when it was made")
    verify.add_argument("run_ids", nargs="*", type=int, metavar="RUN",
                        help="the runs to check (default: all)")
    verify.set_defaults(func=cmd_verify)

    serve = sub.add_parser("serve", help="serve the API and map")
    serving(serve)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``placespend`` console script."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    try:
        try:
            code = int(args.func(args, settings))
        except Exception as exc:
            from store.db import translate

            known = translate(exc)  # a refused change, a lost race, a lost connection
            if known is None:
                raise
            raise known from exc
    except PlacespendError as exc:
        _audit(args, settings, "denied" if exc.status in (401, 403) else
               "failed" if exc.status >= 500 else "refused", exc.one_line())
        console.print(f"placespend: {exc.one_line()}", style="red", markup=False,
                      highlight=False, soft_wrap=True)
        if isinstance(exc, Rejected) and exc.total > 1:
            _print_problems(exc)
        return 2
    except KeyboardInterrupt:
        _audit(args, settings, "failed", "interrupted (Ctrl-C)")
        return 130
    _audit(args, settings, "ok", None)
    return code


if __name__ == "__main__":
    sys.exit(main())
