"""A private PostgreSQL cluster for one ``AGENTPARTY_HOME``: ``agentparty up --state-db postgres`` and the trace viewer.

PostgreSQL 15 is on these machines (``/usr/lib/postgresql/15/bin``; DESIGN.md §5).
``initdb`` and ``postgres`` refuse to run as root, so as root both run as the
``postgres`` user, and the cluster lives where that user can reach it: a home
under ``/root`` is mode 0700, so the data directory goes to
``/var/lib/postgresql/agentparty/<home digest>`` (one cluster per home). As any
other user it lives under ``HOME/postgres`` and runs as that user.

The cluster listens on 127.0.0.1 only (no Unix socket), its superuser is
``agentparty`` with a generated password (scram-sha-256 for every connection),
kept with the port in ``HOME/postgres/cluster.json`` (mode 0600): the port is
chosen once, at ``initdb``, and reused after, so URLs written down stay valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, LiteralString
from urllib.parse import quote

from agentparty.runtime.local_service import PidFileService, free_port

if TYPE_CHECKING:
    from psycopg.sql import Composed

SUPERUSER = "agentparty"
SERVICE_USER = "postgres"
"""The account the server runs as when we are root (Debian's package creates it)."""


def postgres_bin_dir() -> Path | None:
    """Where ``initdb`` and ``postgres`` are: ``AGENTPARTY_POSTGRES_BIN``, PATH, else the newest Debian cluster."""
    configured = os.environ.get("AGENTPARTY_POSTGRES_BIN")
    if configured:
        return Path(configured)
    on_path = shutil.which("initdb")
    if on_path:
        return (
            Path(on_path).resolve().parent
        )  # Debian links a few programs into /usr/local/bin; the rest sit beside the target

    def major(initdb: Path) -> int:
        version = initdb.parent.parent.name
        return int(version) if version.isdigit() else 0

    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=major)
    return versions[-1].parent if versions else None


@dataclass(frozen=True)
class ClusterRecord:
    """What ``initdb`` decided, kept under the home: the port, the superuser's password and where the data is."""

    port: int
    password: str
    data_dir: Path

    @classmethod
    def read(cls, path: Path) -> ClusterRecord | None:
        try:
            raw = json.loads(path.read_text())
            return cls(port=int(raw["port"]), password=str(raw["password"]), data_dir=Path(raw["data_dir"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"port": self.port, "password": self.password, "data_dir": str(self.data_dir)}, out)
        tmp.replace(path)


@dataclass(frozen=True)
class LocalPostgres(PidFileService):
    """The home's PostgreSQL cluster: created on first start, started detached, stopped with a fast shutdown."""

    home: Path
    host: str = "127.0.0.1"
    preferred_port: int = 0
    """The port ``initdb`` records (0: a free one); a cluster already made keeps its own."""
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT
    """PostgreSQL's fast shutdown (sessions end, the checkpoint is written); SIGTERM would wait for every session."""
    clients: tuple[str, ...] = ()
    """Networks (CIDR) besides loopback whose hosts may log in (with the password): ``pg_hba.conf`` gets a line
    for each at every start. Empty: loopback only, as ``initdb`` leaves it."""

    @property
    def record_file(self) -> Path:
        return self.home / "postgres" / "cluster.json"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "postgres.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "postgres.log"

    @property
    def record(self) -> ClusterRecord | None:
        return ClusterRecord.read(self.record_file)

    @property
    def port(self) -> int:  # type: ignore[override]  # PidFileService reads it; here it comes from the record
        record = self.record
        return record.port if record else self.preferred_port

    def _as_service_user(self) -> str | None:
        """``postgres`` when we are root (initdb and postgres refuse root), else None: run as ourselves."""
        return SERVICE_USER if os.geteuid() == 0 else None

    def _cluster_dir(self) -> Path:
        if self._as_service_user() is None:
            return self.home / "postgres"
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:16]
        return Path(pwd.getpwnam(SERVICE_USER).pw_dir) / "agentparty" / digest

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        """A connection URL for ``database`` as the superuser (``driver`` ``postgresql`` for libpq-style clients)."""
        record = self._require_record()
        return f"{driver}://{SUPERUSER}:{quote(record.password, safe='')}@{self.host}:{record.port}/{database}"

    def _require_record(self) -> ClusterRecord:
        record = self.record
        if record is None:
            raise RuntimeError(f"no PostgreSQL cluster for {self.home} yet: run `agentparty up --state-db postgres`")
        return record

    def healthy(self) -> bool:
        """The server accepts our superuser's login (not only a TCP connection)."""
        if self.record is None or not self.accepting():
            return False
        try:
            self._execute("select 1")
        except Exception:  # any failure to log in means not (yet) ready
            return False
        return True

    def _execute(self, query: LiteralString | Composed, params: tuple[str, ...] = ()) -> list[tuple[object, ...]]:
        """One statement as the superuser on the ``postgres`` database, outside a transaction (CREATE DATABASE)."""
        import psycopg  # deferred: the driver loads only where a cluster is used

        with psycopg.connect(self.url("postgres", driver="postgresql"), autocommit=True, connect_timeout=5) as db:
            cursor = db.execute(query, params)
            return list(cursor.fetchall()) if cursor.description else []

    def _bin(self, name: str) -> str:
        folder = postgres_bin_dir()
        if folder is None or not (folder / name).exists():
            raise FileNotFoundError(
                f"PostgreSQL's {name} was not found (set AGENTPARTY_POSTGRES_BIN, or apt-get install postgresql)"
            )
        return str(folder / name)

    def _init_cluster(self) -> ClusterRecord:
        cluster = self._cluster_dir()
        user = self._as_service_user()
        cluster.mkdir(parents=True, exist_ok=True, mode=0o700)
        if user is not None:
            account = pwd.getpwnam(user)
            for folder in (cluster.parent, cluster):
                os.chown(folder, account.pw_uid, account.pw_gid)
        data = cluster / "data"
        if data.exists():  # a half-made cluster from an interrupted initdb
            shutil.rmtree(data)
        password = secrets.token_urlsafe(24)
        password_file = cluster / "initdb-password"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        if user is not None:
            account = pwd.getpwnam(user)
            os.chown(password_file, account.pw_uid, account.pw_gid)
        try:
            subprocess.run(
                [self._bin("initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={password_file}",
                 "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"],
                user=user, check=True, capture_output=True, text=True, cwd=cluster,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed for {data}: {exc.stderr.strip()[-2000:]}") from None
        finally:
            password_file.unlink(missing_ok=True)
        record = ClusterRecord(port=self.preferred_port or free_port(self.host), password=password, data_dir=data)
        record.write(self.record_file)
        return record

    def start(self, timeout: float = 60.0) -> bool:
        """Create the cluster on first use, then start it unless it answers; True if this call started it."""
        record = self.record
        if record is not None and self.healthy():
            return False
        if record is None or not (record.data_dir / "PG_VERSION").exists():
            record = self._init_cluster()
        for folder in (self.pid_file.parent, self.log_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self._allow_clients(record.data_dir / "pg_hba.conf")
        command = [
            self._bin("postgres"), "-D", str(record.data_dir), "-p", str(record.port),
            "-c", f"listen_addresses={self.host}", "-c", "unix_socket_directories=",
            # Prefect's server, each API replica and each worker keep pools of their own
            "-c", "max_connections=300",
        ]  # fmt: skip
        self._launch_as(command, timeout)
        return True

    def _allow_clients(self, hba: Path) -> None:
        """Rewrite our block of ``pg_hba.conf`` for :attr:`clients` (password logins only, never ``trust``)."""
        marker = "# agentparty clients"
        kept = hba.read_text().split(marker)[0].rstrip("\n")
        lines = [f"host all all {network} scram-sha-256" for network in self.clients]
        hba.write_text(kept + "\n" + (marker + "\n" + "\n".join(lines) + "\n" if lines else ""))

    def _launch_as(self, command: list[str], timeout: float) -> None:
        user = self._as_service_user()
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, user=user, cwd=self._require_record().data_dir.parent,
            )  # fmt: skip
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return
            if process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with code {process.returncode}; see {self.log_file}")
            time.sleep(0.2)
        raise TimeoutError(f"PostgreSQL did not answer within {timeout:.0f}s; see {self.log_file}")

    def remove(self) -> None:
        """Stop the cluster and delete its data and record (tests; a home being thrown away)."""
        self.stop()
        record = self.record
        if record is not None:
            shutil.rmtree(record.data_dir.parent, ignore_errors=True)
        self.record_file.unlink(missing_ok=True)

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; True if this call created it."""
        if not name.replace("_", "").isalnum():  # an identifier of our own making: refuse anything odd
            raise ValueError(f"database name {name!r}: letters, digits and underscores only")
        if self._execute("select 1 from pg_database where datname = %s", (name,)):
            return False
        from psycopg import sql  # deferred: as in _execute

        self._execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return True
