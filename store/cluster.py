"""A project-local PostgreSQL 15 + PostGIS cluster, managed from Python.

Nothing here needs a system service: the cluster is a plain data directory under the project's
state directory (see :func:`state_dir`), started with ``pg_ctl`` on a loopback port that is chosen
once and then reused. As root, ``initdb`` and ``pg_ctl`` run as the ``postgres`` OS user (they
refuse to run as root) via ``runuser``; otherwise they run as the calling user.

The layout of a state directory::

    <state>/port            the TCP port, chosen once (or set by PLACESPEND_PG_PORT) and reused
    <state>/lock            serialises concurrent ensure_running()/stop() calls
    <state>/pgdata/         the data directory (owned by postgres when run as root)
    <state>/run/            the unix socket directory
    <state>/postgres.log    the server log

Only the standard library is needed to run the cluster; psycopg (a project dependency) is
imported lazily to create databases and the PostGIS extension.

Environment:

``PLACESPEND_STATE_DIR``
    Where the cluster lives, instead of ``<repo>/.placespend`` or ``/var/tmp/placespend-<hash>``.
``PLACESPEND_PG_PORT``
    The port to use (persisted, so later calls without it keep using it).
``DATABASE_URL``
    Use this database instead of the project-local cluster (see :func:`resolve_database_url`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from domain.errors import SetupError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "Cluster",
    "create_database",
    "drop_database",
    "ensure_running",
    "resolve_database_url",
    "state_dir",
    "stop",
]

PG_MAJOR = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
POSTGIS_CONTROL = Path(f"/usr/share/postgresql/{PG_MAJOR}/extension/postgis.control")
#: First port tried when none is persisted yet; the search goes upward from here.
FIRST_PORT = 54329
PORT_SEARCH_SPAN = 200
#: The OS user that owns the cluster when we run as root.
OS_USER = "postgres"
#: How long pg_ctl waits for the server to start or stop, in seconds.
PG_CTL_TIMEOUT = 60
#: Longest unix socket path the kernel accepts (sun_path is 108 bytes incl. the NUL).
MAX_SOCKET_PATH = 107

APT_FIX = (
    "run `bash bin/setup`, which installs them with `apt-get update && "
    "DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-15 postgresql-15-postgis-3`"
)
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Cluster:
    """A running project-local PostgreSQL cluster."""

    data_dir: Path
    port: int
    socket_dir: Path
    log_file: Path

    def url(self, dbname: str = "placespend") -> str:
        """Return the libpq URL of database ``dbname`` in this cluster (TCP on loopback, trust)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"


# --------------------------------------------------------------------------- where it lives


def state_dir(project_root: Path | None = None) -> Path:
    """Return the directory that holds the cluster (it may not exist yet).

    ``PLACESPEND_STATE_DIR`` wins when set. Otherwise ``<project_root>/.placespend`` when the
    server's OS user can reach it, else ``/var/tmp/placespend-<12 hex of sha256(project root)>``
    (a checkout under a root-only folder such as ``/root`` is unreachable for ``postgres``).
    """
    override = os.environ.get("PLACESPEND_STATE_DIR")
    if override:
        return Path(override).expanduser().absolute()
    root = (project_root or _REPO_ROOT).resolve()
    local = root / ".placespend"
    if _server_can_use(local if local.exists() else root):
        return local
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"placespend-{digest}"


@lru_cache(maxsize=32)
def _server_can_use(directory: Path) -> bool:
    """Tell whether the server's OS user can reach (and, when it is us, write) ``directory``."""
    if os.geteuid() != 0:
        return os.access(directory, os.W_OK | os.X_OK)
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        return False
    probe = subprocess.run(
        [*_as_server_user(["test", "-x", str(directory)])],
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


# --------------------------------------------------------------------------- lifecycle


def ensure_running(root: Path | None = None) -> Cluster:
    """Make sure the project-local cluster exists and runs; return it.

    Idempotent and safe to call from several processes at once: creates the cluster with
    ``initdb`` the first time (trust auth on the unix socket and 127.0.0.1 only), picks a free
    loopback port once (persisted in ``<state>/port``, or ``PLACESPEND_PG_PORT``), and starts
    the server if it is not running. Raises :class:`SetupError` when PostgreSQL/PostGIS are
    not installed, the port is taken by something else, or the server fails to start.
    """
    _check_installed()
    sd = state_dir(root)
    _make_state_dir(sd)
    with _locked(sd):
        port = _wanted_port(sd)
        cluster = _cluster_at(sd, port)
        _check_socket_path(cluster)
        running = _running_port(cluster.data_dir)
        if running == port:
            return cluster
        if running is not None:
            # PLACESPEND_PG_PORT changed since the server started: restart it on the new port.
            _pg_ctl(cluster, "stop", "-m", "fast")
        if not _port_free(port):
            raise SetupError(
                f"Port {port} on 127.0.0.1 is already in use by another program, so the "
                f"Placespend database (in {sd}) cannot start on it",
                fix=(
                    "stop whatever listens there (if it is another Placespend checkout, run "
                    "`placespend db stop` in it), or set PLACESPEND_PG_PORT to a free port"
                ),
            )
        if not (cluster.data_dir / "PG_VERSION").exists():
            _initdb(cluster)
        _check_version(cluster.data_dir)
        _write_settings(cluster)
        _persist_port(sd, port)
        _pg_ctl(cluster, "start", "-l", str(cluster.log_file))
        return cluster


def stop(root: Path | None = None) -> bool:
    """Stop the project-local cluster (fast shutdown); return False if it was not running."""
    sd = state_dir(root)
    if not (sd / "pgdata" / "PG_VERSION").exists():
        return False
    _check_installed()
    with _locked(sd):
        cluster = _cluster_at(sd, port=_persisted_port(sd) or 0)
        if _running_port(cluster.data_dir) is None:
            return False
        _pg_ctl(cluster, "stop", "-m", "fast")
        return True


# --------------------------------------------------------------------------- databases


def create_database(cluster: Cluster, name: str, *, drop_first: bool = False) -> str:
    """Create database ``name`` if missing, with the PostGIS extension; return its URL.

    With ``drop_first`` an existing database of that name is dropped first (connections to
    it are terminated), so the caller gets an empty one.
    """
    _check_db_name(name)
    if drop_first:
        drop_database(cluster, name)
    pg, sql = _psycopg()
    with _connect(cluster.url("postgres")) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except pg.errors.DuplicateDatabase:
                pass  # another process created it between our check and our CREATE
    url = cluster.url(name)
    with _connect(url) as conn:
        _ensure_postgis(conn, url)
    return url


def discard_database(name: str) -> None:
    """Drop database ``name`` where :func:`fresh_database` makes it.

    That is ``DATABASE_URL``'s server, else the project-local cluster; tests call it so that
    they leave no databases behind.
    """
    _check_db_name(name)
    base = os.environ.get("DATABASE_URL")
    if not base:
        drop_database(ensure_running(), name)
        return
    pg, sql = _psycopg()
    with _connect(pg.conninfo.make_conninfo(base, dbname="postgres")) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def drop_database(cluster: Cluster, name: str) -> None:
    """Drop database ``name`` if it exists, terminating any connections to it."""
    _check_db_name(name)
    _, sql = _psycopg()
    with _connect(cluster.url("postgres")) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def resolve_database_url(dbname: str = "placespend") -> str:
    """Return the URL of the database Placespend should use, ready with PostGIS.

    ``DATABASE_URL`` wins when set: it is returned unchanged once it answers and has (or can be
    given) PostGIS. Otherwise the project-local cluster is started and ``dbname`` created in it.
    """
    url = os.environ.get("DATABASE_URL")
    if not url:
        return create_database(ensure_running(), dbname)
    with _connect(url) as conn:
        _ensure_postgis(conn, url)
    return url


def fresh_database(name: str) -> str:
    """An empty database ``name`` with PostGIS (dropped first if it exists); return its URL.

    On the server ``DATABASE_URL`` names when set, else in the project-local cluster. For tests
    and benchmarks, which each want a database of their own.
    """
    _check_db_name(name)
    base = os.environ.get("DATABASE_URL")
    if not base:
        return create_database(ensure_running(), name, drop_first=True)
    discard_database(name)
    pg, sql = _psycopg()
    with _connect(pg.conninfo.make_conninfo(base, dbname="postgres")) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg.conninfo.make_conninfo(base, dbname=name)
    with _connect(url) as conn:
        _ensure_postgis(conn, url)
    return url


# --------------------------------------------------------------------------- helpers


def _check_installed() -> None:
    """Raise SetupError unless the PostgreSQL 15 binaries and PostGIS 3 are installed."""
    missing = [
        str(p) for p in (PG_BIN / "initdb", PG_BIN / "pg_ctl", POSTGIS_CONTROL) if not p.exists()
    ]
    if missing:
        raise SetupError(
            f"PostgreSQL {PG_MAJOR} with PostGIS is not installed ({', '.join(missing)} missing)",
            fix=APT_FIX,
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            raise SetupError(
                f"The OS user {OS_USER!r} that runs PostgreSQL does not exist", fix=APT_FIX
            ) from None


def _cluster_at(sd: Path, port: int) -> Cluster:
    return Cluster(
        data_dir=sd / "pgdata",
        port=port,
        socket_dir=sd / "run",
        log_file=sd / "postgres.log",
    )


def _as_server_user(cmd: Sequence[str]) -> list[str]:
    """Prefix ``cmd`` so that it runs as the cluster's OS user when we are root."""
    if os.geteuid() != 0:
        return list(cmd)
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", OS_USER, "--", *cmd]


def _give_to_server(path: Path) -> None:
    """Make the server's OS user own ``path`` (only needed, and only done, as root)."""
    if os.geteuid() == 0:
        user = pwd.getpwnam(OS_USER)
        os.chown(path, user.pw_uid, user.pw_gid)


def _make_state_dir(sd: Path) -> None:
    try:
        sd.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(
            f"Cannot create the database state directory {sd}: {exc.strerror}",
            fix="set PLACESPEND_STATE_DIR to a writable directory",
        ) from exc
    if os.geteuid() == 0:
        _server_can_use.cache_clear()
        if not _server_can_use(sd):
            raise SetupError(
                f"The {OS_USER!r} OS user cannot reach the database state directory {sd} "
                "(a parent folder is not searchable for it)",
                fix=(
                    "set PLACESPEND_STATE_DIR to a directory under /var/tmp, or make each "
                    "parent folder searchable (chmod o+x)"
                ),
            )


@contextlib.contextmanager
def _locked(sd: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state directory (released when the block ends)."""
    with open(sd / "lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _persisted_port(sd: Path) -> int | None:
    try:
        text = (sd / "port").read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def _persist_port(sd: Path, port: int) -> None:
    if _persisted_port(sd) != port:
        tmp = sd / "port.tmp"
        tmp.write_text(f"{port}\n")
        tmp.replace(sd / "port")


def _wanted_port(sd: Path) -> int:
    """Return the port to run on: PLACESPEND_PG_PORT, else the persisted one, else a free one."""
    override = os.environ.get("PLACESPEND_PG_PORT")
    if override:
        if not override.isdigit() or not 1 <= int(override) <= 65535:
            raise SetupError(
                f"PLACESPEND_PG_PORT={override!r} is not a TCP port number",
                fix="set PLACESPEND_PG_PORT to a number between 1024 and 65535, or unset it",
            )
        return int(override)
    persisted = _persisted_port(sd)
    if persisted is not None:
        return persisted
    for port in range(FIRST_PORT, FIRST_PORT + PORT_SEARCH_SPAN):
        if _port_free(port):
            _persist_port(sd, port)
            return port
    raise SetupError(
        f"No free TCP port on 127.0.0.1 between {FIRST_PORT} and "
        f"{FIRST_PORT + PORT_SEARCH_SPAN - 1}",
        fix="set PLACESPEND_PG_PORT to a free port",
    )


def _port_free(port: int) -> bool:
    """Tell whether a server could listen on 127.0.0.1:``port`` (as PostgreSQL binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # PostgreSQL sets SO_REUSEADDR too, so TIME_WAIT leftovers do not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _check_socket_path(cluster: Cluster) -> None:
    path = cluster.socket_dir / f".s.PGSQL.{cluster.port}.lock"
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise SetupError(
            f"The database socket path {path} is longer than the {MAX_SOCKET_PATH} bytes "
            "a unix socket allows",
            fix="set PLACESPEND_STATE_DIR to a shorter path, e.g. /var/tmp/placespend",
        )


def _running_port(data_dir: Path) -> int | None:
    """Return the port the server of ``data_dir`` listens on, or None if it is not running."""
    if not (data_dir / "PG_VERSION").exists():
        return None
    status = _run([str(PG_BIN / "pg_ctl"), "status", "-D", str(data_dir)], cwd=data_dir.parent)
    if status.returncode != 0:  # 3: not running; 4: no accessible data directory
        return None
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        return int(lines[3])
    except (OSError, IndexError, ValueError):
        return None


def _run(cmd: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool as the server's OS user; never raise on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    try:
        return subprocess.run(
            _as_server_user(cmd),
            cwd=cwd,  # the server user must be able to enter it (initdb calls getcwd)
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise SetupError(f"Cannot run {cmd[0]}: {exc.strerror}", fix=APT_FIX) from exc


def _tail(text: str, lines: int = 5) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"


def _log_tail(log_file: Path, lines: int = 5) -> str:
    try:
        return _tail(log_file.read_text(errors="replace"), lines)
    except OSError:
        return "(no log)"


def _initdb(cluster: Cluster) -> None:
    """Create the data directory with initdb, atomically (a half-made one never stays)."""
    scratch = cluster.data_dir.with_name(cluster.data_dir.name + ".initdb")
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(mode=0o700)
    _give_to_server(scratch)
    result = _run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(scratch),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ],
        cwd=scratch.parent,
    )
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise SetupError(
            f"initdb failed (exit {result.returncode}) for {cluster.data_dir}: "
            f"{_tail(result.stdout + result.stderr)}",
            fix=(
                "check that the disk has space and the folder is writable; "
                f"remove {cluster.data_dir.parent} and try again"
            ),
        )
    hba = scratch / "pg_hba.conf"
    hba.write_text(
        "# Written by store/cluster.py: trust, but only on the unix socket and 127.0.0.1.\n"
        "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
        "local   all       all                 trust\n"
        "host    all       all   127.0.0.1/32  trust\n"
    )
    with open(scratch / "postgresql.conf", "a") as conf:
        conf.write("\n# Placespend: port, addresses and socket, rewritten at every start.\n")
        conf.write("include_if_exists = 'placespend.conf'\n")
    _give_to_server(hba)
    scratch.replace(cluster.data_dir)


def _check_version(data_dir: Path) -> None:
    version = (data_dir / "PG_VERSION").read_text().strip()
    if version != PG_MAJOR:
        raise SetupError(
            f"The database in {data_dir} was made by PostgreSQL {version}, not {PG_MAJOR}",
            fix=f"remove {data_dir.parent} (its data is lost) and run again",
        )


def _quote_conf(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write_settings(cluster: Cluster) -> None:
    """Prepare the socket dir and log file, and write the port/address/socket settings."""
    cluster.socket_dir.mkdir(mode=0o755, exist_ok=True)
    _give_to_server(cluster.socket_dir)
    cluster.log_file.touch(exist_ok=True)
    _give_to_server(cluster.log_file)
    settings = cluster.data_dir / "placespend.conf"
    settings.write_text(
        "# Written by store/cluster.py at every start; edit that, not this.\n"
        f"port = {cluster.port}\n"
        "listen_addresses = '127.0.0.1'\n"
        f"unix_socket_directories = {_quote_conf(str(cluster.socket_dir))}\n"
    )
    _give_to_server(settings)


def _pg_ctl(cluster: Cluster, action: str, *args: str) -> None:
    """Run ``pg_ctl ACTION`` waiting for it; raise SetupError with the log's tail on failure."""
    cmd = [
        str(PG_BIN / "pg_ctl"),
        action,
        "-D",
        str(cluster.data_dir),
        "-w",
        "-t",
        str(PG_CTL_TIMEOUT),
        *args,
    ]
    result = _run(cmd, cwd=cluster.data_dir.parent)
    if result.returncode == 0:
        return
    raise SetupError(
        f"PostgreSQL failed to {action} (pg_ctl exit {result.returncode}: "
        f"{_tail(result.stdout + result.stderr, 2)}); last lines of {cluster.log_file}: "
        f"{_log_tail(cluster.log_file)}",
        fix=(
            f"read {cluster.log_file}; if port {cluster.port} is taken set PLACESPEND_PG_PORT, "
            f"if the data is damaged remove {cluster.data_dir.parent} and run again"
        ),
    )


def _check_db_name(name: str) -> None:
    if not _DB_NAME.match(name):
        raise SetupError(
            f"{name!r} is not a usable database name",
            fix="use letters, digits and underscores, starting with a letter (63 at most)",
        )


def _psycopg() -> tuple[Any, Any]:
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:
        raise SetupError(
            "psycopg (the PostgreSQL driver) is not installed",
            fix="run `bash bin/setup` and use .venv/bin/python",
        ) from exc
    return psycopg, sql


#: ``password=...`` (and ``sslpassword=...``) in a key/value connection string or a query
#: string: a quoted value, or everything up to the next space or ``&``.
_PASSWORD = re.compile(r"(?i)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'|[^\s&]*)")


def redact_url(url: str) -> str:
    """A connection string fit for a message or a log, in every form libpq takes.

    URL form: the user name and password before ``@`` removed; any ``password=`` or
    ``sslpassword=`` (in the query string of a URL, or in a key/value string such as
    ``host=db password=secret``) replaced by ``***``.
    """
    text = _PASSWORD.sub(lambda m: f"{m.group(1)}=***", url)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _connect(url: str) -> psycopg.Connection[Any]:
    pg, _ = _psycopg()
    try:
        conn: psycopg.Connection[Any] = pg.connect(url, autocommit=True, connect_timeout=10)
    except pg.OperationalError as exc:
        detail = _tail(str(exc), 2)
        raise SetupError(
            f"Cannot connect to the database {redact_url(url)}: {detail}",
            fix=(
                "check that the server runs and DATABASE_URL is right, or unset DATABASE_URL "
                "to use the project-local database (`bash bin/setup`)"
            ),
        ) from exc
    return conn


def _ensure_postgis(conn: psycopg.Connection[Any], url: str) -> None:
    """Create the PostGIS extension in the connected database if missing; check it works."""
    pg, _ = _psycopg()
    have = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone()
    if not have:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except pg.errors.UniqueViolation:
            pass  # created concurrently by another session
        except pg.Error as exc:
            raise SetupError(
                f"The database {redact_url(url)} has no PostGIS and it cannot be added: "
                f"{_tail(str(exc), 2)}",
                fix=(
                    "install PostGIS 3 on that server and run `CREATE EXTENSION postgis` "
                    "as a superuser, or unset DATABASE_URL to use the project-local database"
                ),
            ) from exc
    try:
        conn.execute("SELECT postgis_version()").fetchone()
    except pg.Error as exc:
        raise SetupError(
            f"PostGIS does not work in {redact_url(url)}: {_tail(str(exc), 2)}",
            fix="reinstall PostGIS 3 on that server (`ALTER EXTENSION postgis UPDATE`)",
        ) from exc
