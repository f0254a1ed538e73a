"""The workflow definitions in the search path, as the API sees them, re-read only when a file changes.

Webhooks look their workflow up on every request; parsing and validating every
definition each time would cost more than the rest of the request, so each
file's definition is kept with its modification time and size and reloaded
when either changes. Even checking those (a listing and a stat per file) was a
quarter of a webhook's CPU, so a lookup that finds its id trusts a scan up to
``RESCAN_S`` old: an edited definition counts from at most a second later,
while an id not known yet, and every listing, always scans. The search path is
the one deployed flow runs use (``agentparty.flows.deployed.search_dirs``:
``AGENTPARTY_WORKFLOWS`` or the working directory), so an id means the same
definition to the API and to the flow run it starts. Where two files share an id, the first directory wins,
then the first file by name, as for deployed entrypoints.

Beside the files, the index holds the definitions stored with the deployments
on the Prefect server (:mod:`agentparty.api.deployed_workflows`), so an API
without the files (a replica on another host, or one started without
``AGENTPARTY_WORKFLOWS``) still knows the deployed workflows. A file in the
search path wins over a stored copy with the same id: the search path is what
the operator configured. Routes use the async :meth:`WorkflowIndex.lookup` and
:meth:`WorkflowIndex.listing`, which read the copies again when due; the sync
``get`` and ``scan`` use the copies last read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentparty.models import ModelRegistry, WorkflowDefinition
from agentparty.models.workflow import WebhookTrigger
from agentparty.runtime.documents import WORKFLOW_SUFFIXES, DocumentError, load_workflow, read_document

if TYPE_CHECKING:
    from agentparty.api.deployed_workflows import DeployedWorkflows


@dataclass(frozen=True)
class IndexedWorkflow:
    path: Path
    """The definition file (for a stored copy: the file it was deployed from, on the deploying host)."""
    definition: WorkflowDefinition
    deployment: str | None = None
    """The deployment whose stored copy this is; None for a file in the search path."""

    @property
    def webhook(self) -> WebhookTrigger | None:
        return next((t for t in self.definition.triggers if isinstance(t, WebhookTrigger)), None)


@dataclass(frozen=True)
class InvalidWorkflow:
    path: Path
    errors: list[str]


_Entry = IndexedWorkflow | InvalidWorkflow | None
"""None: the file is not a workflow definition (a template, a config)."""

RESCAN_S = 1.0
COPIES_REFRESH_S = 10.0
"""A workflow found among the stored copies is served from a read of them up to this old."""
COPIES_MISS_S = 1.0
"""An id found nowhere, and every listing, reads the copies again when the last read is older than this."""


def _load(path: Path, registry: ModelRegistry | None) -> _Entry:

    try:
        data = read_document(path).data
    except DocumentError as exc:
        return InvalidWorkflow(path, [e.render(str(path)) for e in exc.errors])
    if not isinstance(data.get("id"), str) or "steps" not in data:
        return None
    try:
        return IndexedWorkflow(path, load_workflow(path, registry))
    except DocumentError as exc:
        return InvalidWorkflow(path, [e.render(str(path)) for e in exc.errors])


class WorkflowIndex:
    def __init__(
        self,
        directories: Callable[[], list[Path]],
        registry: ModelRegistry | None = None,
        deployed: DeployedWorkflows | None = None,
    ) -> None:
        self._directories = directories
        self._registry = registry
        self._deployed = deployed
        self._files: dict[Path, tuple[tuple[int, int], _Entry]] = {}
        self._lock = threading.Lock()
        self._found: dict[str, IndexedWorkflow] = {}
        self._scanned_at = float("-inf")

    def _entry(self, path: Path) -> _Entry:
        try:
            stat = path.stat()
        except OSError:
            return None
        signature = (stat.st_mtime_ns, stat.st_size)
        cached = self._files.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        entry = _load(path, self._registry)
        self._files[path] = (signature, entry)
        return entry

    def scan(self) -> tuple[dict[str, IndexedWorkflow], list[InvalidWorkflow]]:
        """Every valid definition by id, and the files that failed to load."""
        found: dict[str, IndexedWorkflow] = {}
        invalid: list[InvalidWorkflow] = []
        with self._lock:
            for configured in self._directories():
                directory = configured.resolve()
                if not directory.is_dir():
                    continue
                for path in sorted(
                    p for p in directory.iterdir() if p.suffix.lower() in WORKFLOW_SUFFIXES and p.is_file()
                ):
                    entry = self._entry(path)
                    if isinstance(entry, IndexedWorkflow):
                        found.setdefault(entry.definition.id, entry)
                    elif isinstance(entry, InvalidWorkflow):
                        invalid.append(entry)
            self._found, self._scanned_at = found, time.monotonic()
        if self._deployed is not None:
            for workflow_id, stored in self._deployed.found.items():
                found.setdefault(workflow_id, stored)
            invalid.extend(self._deployed.invalid)
        return found, invalid

    def get(self, workflow_id: str) -> IndexedWorkflow | None:
        if time.monotonic() - self._scanned_at < RESCAN_S:
            if (recent := self._found.get(workflow_id)) is not None:
                return recent
            if self._deployed is not None and (stored := self._deployed.found.get(workflow_id)) is not None:
                return stored  # no file had it a moment ago: the stored copy, without listing the folders again
        return self.scan()[0].get(workflow_id)

    async def lookup(self, workflow_id: str) -> IndexedWorkflow | None:
        """:meth:`get`, reading the stored copies again when one is due (a file in the search path needs no read)."""
        found = self.get(workflow_id)
        if self._deployed is None or (found is not None and found.deployment is None):
            return found
        await self._deployed.refresh(COPIES_REFRESH_S if found is not None else COPIES_MISS_S)
        return self.get(workflow_id)

    async def listing(self) -> tuple[dict[str, IndexedWorkflow], list[InvalidWorkflow]]:
        """:meth:`scan`, with the stored copies read again when the last read is over a second old."""
        if self._deployed is not None:
            await self._deployed.refresh(COPIES_MISS_S)
        return self.scan()
