"""What the audit log costs the API: an entry appended on its own, in a batch, and a request's hand-off.

    python bench/audit_log.py [--entries N] [--state-db-url URL]

(a) ``AuditLog.append``: one locked, ``fsync``'d append per entry, then the head anchor
    (``audit.head``) replaced atomically, a second ``fsync`` (what a CLI command or a
    configuration load does once);
(b) ``AuditLog.append_many`` of 256 entries: one lock, one append and one head per batch
    (what the API's background writer does);
(c) ``AuditWriter.submit``: what a request itself spends (a put on a bounded queue).

``--state-db-url``: (a) and (b) on the chain in that PostgreSQL database instead
(``runtime/audit_postgres.py``: one transaction per append, under the chain's
advisory lock; a database used for nothing else, as entries are left there).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from agentparty.api.audit import AuditWriter
from agentparty.runtime.audit import AuditLog
from agentparty.runtime.audit_trail import AuditTrail

BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2048)
    parser.add_argument("--state-db-url", default=None, help="measure (a) and (b) on PostgreSQL")
    arguments = parser.parse_args()
    entries = arguments.entries
    home = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    event = {"actor": "key:ci", "action": "api.request", "target": "GET /runs", "outcome": "200", "ms": 1.0}

    log = _trail(home / "single", arguments.state_db_url)
    singles = max(1, entries // 10)
    started = time.perf_counter()
    for _ in range(singles):
        log.append("key:ci", "api.request", "GET /runs", "200", ms=1.0)
    single = (time.perf_counter() - started) / singles

    batched_log = _trail(home / "batched", arguments.state_db_url)
    batches = max(1, entries // BATCH)
    started = time.perf_counter()
    for _ in range(batches):
        batched_log.append_many([dict(event) for _ in range(BATCH)])
    batched = (time.perf_counter() - started) / (batches * BATCH)

    writer = AuditWriter(AuditLog.at(home / "writer"))
    started = time.perf_counter()
    for _ in range(entries):
        writer.submit(dict(event), may_drop=True)
    submit = (time.perf_counter() - started) / entries
    writer.close()

    print(f"(a) append, fsync each:      {single * 1e3:8.3f} ms per entry")
    print(f"(b) append_many({BATCH}):        {batched * 1e3:8.4f} ms per entry")
    print(f"(c) submit (request's cost): {submit * 1e6:8.1f} us per request")


def _trail(home: Path, url: str | None) -> AuditTrail:
    if url is None:
        return AuditLog.at(home)
    from agentparty.runtime.audit_postgres import PostgresAuditLog
    from agentparty.runtime.state_backend import PostgresBackend

    return PostgresAuditLog(PostgresBackend(url))


if __name__ == "__main__":
    main()
