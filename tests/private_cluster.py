"""A throwaway PostgreSQL cluster of a test's own, to stop, kill and restart at will.

The shared project cluster (``store.cluster.ensure_running()``) serves every other test, so
a test that takes its database away uses one of these instead: a fresh data directory under
``/var/tmp`` (the ``postgres`` OS user must reach it when tests run as root) on a free port
of its own, made with the same code as the project's (``store.cluster``)::

    with private_cluster() as (pc, url_of):
        url = pc.create_database("placespend_fault")   # == url_of("placespend_fault")
        pc.copy_database("case_1", "placespend_fault")  # CREATE DATABASE ... TEMPLATE
        pc.kill_immediately()                           # pg_ctl stop -m immediate
        pc.start()                                      # the same data, the same port

On leaving the block the cluster is stopped and its directory removed.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from store import cluster as clusters


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    """One private cluster: its state directory and port, and what can be done to it."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.cluster: clusters.Cluster | None = None

    @contextmanager
    def _env(self) -> Iterator[None]:
        """``PLACESPEND_STATE_DIR`` and ``PLACESPEND_PG_PORT`` naming this cluster, for one
        call of store.cluster (restored after, so nothing else is sent here)."""
        wanted = {"PLACESPEND_STATE_DIR": str(self.root), "PLACESPEND_PG_PORT": str(self.port)}
        before = {k: os.environ.get(k) for k in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def start(self) -> clusters.Cluster:
        """Start it (made with initdb the first time); return it."""
        with self._env():
            self.cluster = clusters.ensure_running()
        return self.cluster

    def stop(self) -> None:
        """Stop it cleanly (``pg_ctl stop -m fast``)."""
        with self._env():
            clusters.stop()

    def kill_immediately(self) -> None:
        """Stop it as a crash would (``pg_ctl stop -m immediate``: no checkpoint, every
        connection cut)."""
        assert self.cluster is not None, "start() it first"
        clusters._pg_ctl(self.cluster, "stop", "-m", "immediate")

    def restart(self) -> clusters.Cluster:
        """Stop it (fast) and start it again on the same port."""
        self.stop()
        return self.start()

    def running(self) -> bool:
        """Whether its server runs."""
        assert self.cluster is not None
        return clusters._running_port(self.cluster.data_dir) is not None

    def url_of(self, dbname: str) -> str:
        """The URL of database ``dbname`` in it."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` with PostGIS (empty, no migrations); return its URL."""
        assert self.cluster is not None, "start() it first"
        return clusters.create_database(self.cluster, name)

    def copy_database(self, name: str, template: str) -> str:
        """Create database ``name`` as a copy of ``template`` (which nobody may be connected
        to); return its URL. Fast: the files are copied, nothing is loaded again."""
        assert self.cluster is not None, "start() it first"
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url_of("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        return self.url_of(name)


@contextmanager
def private_cluster() -> Iterator[tuple[PrivateCluster, Callable[[str], str]]]:
    """A started private cluster and its ``url_of(dbname)``; stopped and removed after."""
    root = Path(tempfile.mkdtemp(prefix="ps-pc-", dir="/var/tmp"))
    root.chmod(0o755)
    pc = PrivateCluster(root, free_port())
    try:
        pc.start()
        yield pc, pc.url_of
    finally:
        try:
            if pc.cluster is not None and pc.running():
                clusters._pg_ctl(pc.cluster, "stop", "-m", "immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)
