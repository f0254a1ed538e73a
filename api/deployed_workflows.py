"""The definitions stored with the deployments on the Prefect server, as the API sees them.

A replica that has no definition files (or ``agentparty api`` started without
``AGENTPARTY_WORKFLOWS`` after ``agentparty serve examples/``) still serves the
deployed workflows' webhooks and lists them: ``agentparty deploy`` and ``serve``
store a copy of each definition with its deployment
(:mod:`agentparty.deployments.definition_copies`), and this reads them back.

Reads are cached: the webhook path must not pay a Prefect round trip per
request. A workflow found in the copies is served from a read up to
``COPIES_REFRESH_S`` old (so a re-deploy counts from at most that later); an id
not found, and every listing, reads again when the last read is more than
``COPIES_MISS_S`` old (both in :mod:`agentparty.api.workflow_index`), so a workflow deployed a moment ago is found on its first
webhook while a stream of unknown ids costs at most one read a second.
Concurrent requests share one read. Each copy is validated once per text (the
same checks as a file: :func:`~agentparty.deployments.definition_copies.validate_copy`);
one that no longer validates (a model since removed from the registry, say) is
logged with its deployment's name and listed as invalid, never served.
When Prefect cannot be reached the last copies read stay in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.exceptions import PrefectHTTPStatusError

from agentparty.api.workflow_index import IndexedWorkflow, InvalidWorkflow
from agentparty.deployments.definition_copies import StoredCopy, WorkflowDefinitionCopy, read_copies, validate_copy
from agentparty.models import DEFAULT_MODEL_REGISTRY, ModelRegistry
from agentparty.runtime.documents import DocumentError

logger = logging.getLogger(__name__)

_Key = tuple[str, str, tuple[str, ...]]
"""A copy's deployment name, text and resolved subgraph targets: what its validation depends on."""


@dataclass
class DeployedWorkflows:
    """Copies of the deployed definitions by workflow id, read from Prefect through ``client_of()`` (None: no
    Prefect API, so none are known)."""

    client_of: Callable[[], PrefectClient | None]
    registry: ModelRegistry | None = None
    found: dict[str, IndexedWorkflow] = field(default_factory=dict)
    invalid: list[InvalidWorkflow] = field(default_factory=list)
    _read_at: float = float("-inf")
    _pending: asyncio.Task[None] | None = None
    _validated: dict[_Key, IndexedWorkflow | InvalidWorkflow] = field(default_factory=dict)
    """Each copy validated once per text (re-validated when its deployment's copy changes)."""

    async def refresh(self, max_age: float) -> None:
        """Read the copies again if the last read is older than ``max_age`` seconds (one read for all callers)."""
        if time.monotonic() - self._read_at < max_age:
            return
        client = self.client_of()
        if client is None:
            return
        loop = asyncio.get_running_loop()
        task = self._pending
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._pending = loop.create_task(self._read(client))
        await asyncio.shield(task)

    async def _read(self, client: PrefectClient) -> None:
        try:
            copies = await read_copies(client)
        except (httpx.HTTPError, PrefectHTTPStatusError) as exc:  # keep serving what was read last
            logger.warning("cannot read the deployed workflow definitions from Prefect: %s", exc)
            self._read_at = time.monotonic()
            return
        found: dict[str, IndexedWorkflow] = {}
        invalid: list[InvalidWorkflow] = []
        validated: dict[_Key, IndexedWorkflow | InvalidWorkflow] = {}
        newest_first = sorted(copies, key=lambda c: c.name)  # a renamed workflow leaves its old deployment behind:
        newest_first.sort(key=lambda c: c.updated.timestamp() if c.updated else 0.0, reverse=True)  # serve the last
        for stored in newest_first:
            copy = stored.copy
            key = (stored.name, copy.text, tuple(copy.subgraph_targets)) if copy else (stored.name, "", ())
            entry = self._validated.get(key)
            if entry is None:  # first seen (or changed): validated, and a failure logged, once
                problem = [stored.problem or "unreadable"]
                entry = self._validate(stored, copy) if copy else self._reject(stored, Path(stored.name), problem)
            validated[key] = entry
            if isinstance(entry, IndexedWorkflow):
                found.setdefault(entry.definition.id, entry)
            else:
                invalid.append(entry)
        self.found, self.invalid, self._validated = found, invalid, validated  # copies gone are forgotten
        self._read_at = time.monotonic()

    def _validate(self, stored: StoredCopy, copy: WorkflowDefinitionCopy) -> IndexedWorkflow | InvalidWorkflow:
        source = Path(copy.source)
        try:
            definition = validate_copy(copy, self.registry if self.registry is not None else DEFAULT_MODEL_REGISTRY)
        except DocumentError as exc:
            label = f"{source} (stored with deployment {stored.name})"
            return self._reject(stored, source, [e.render(label) for e in exc.errors])
        return IndexedWorkflow(source, definition, deployment=stored.name)

    @staticmethod
    def _reject(stored: StoredCopy, path: Path, errors: list[str]) -> InvalidWorkflow:
        logger.warning(
            "the definition stored with deployment %s no longer validates; skipped: %s", stored.name, "; ".join(errors)
        )
        return InvalidWorkflow(path, errors)
