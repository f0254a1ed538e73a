"""A copy of each deployed workflow definition, stored with its deployment on the Prefect server.

An API replica must answer a workflow's webhook and list it without sharing a
disk with the definition files, and ``agentparty serve examples/`` followed by
``agentparty api`` must work without telling the API where the files are
(issue 24). So ``agentparty deploy`` and ``serve`` store the definition beside
the deployment, and the API reads the deployed definitions back from the
Prefect server it already talks to.

Where it is stored: a block document of our own block type
(:class:`WorkflowDefinitionCopy`, slug ``agentparty-workflow-definition``),
named after the deployment's id. Blocks are Prefect's typed documents kept on
the server for exactly this (configuration that processes anywhere read back),
with no size cap, all of one type read in one request
(``GET /block_types/slug/{slug}/block_documents``), and visible on the UI's
Blocks page. The alternatives do not fit:

- a Variable caps its value at 5,000 characters
  (``prefect.types.MAX_VARIABLE_VALUE_LENGTH``); a definition with its prompts
  and schemas exceeds that;
- the deployment's own fields all mean something to Prefect: ``description``
  and ``parameter_openapi_schema`` are shown and enforced on the run form,
  ``job_variables`` become the flow-run process's configuration (checked
  against the work pool's template), ``labels`` are short key/values for
  filtering, ``version_info`` describes source control.

Named by deployment id, a copy belongs to exactly one deployment: a re-deploy
(same id) overwrites it, and the reader keeps only copies whose deployment still
exists, so deleting a deployment takes its workflow off the API too.

What is stored: the file's text as written (not a re-serialisation, so it is
parsed and validated exactly as the file is: :func:`validate_copy`), the name
of the file it was deployed from (YAML or JSON by its suffix; errors cite it),
the deployment's full name, and the subgraph targets that resolved when it was
deployed (a reader has no files next to it to resolve them against).
Deployments created by ``prefect deploy`` from a generated ``prefect.yaml``
carry no copy: the API finds those definitions in its search path only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

from prefect.blocks.core import Block
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.exceptions import PrefectHTTPStatusError
from pydantic import Field, ValidationError

from agentparty.models import ModelRegistry, ValidationContext, WorkflowDefinition
from agentparty.models.errors import FieldError
from agentparty.runtime.documents import DocumentError, WorkflowCatalog, parse_document, validate_document

BLOCK_NAME_PREFIX = "deployment-"
_PAGE = 200
"""Deployments read per request when checking which copies still have theirs (the server's default limit)."""


class WorkflowDefinitionCopy(Block):
    """The definition a deployment was made from, as its file read when it was deployed."""

    _block_type_name = "Agent Party workflow definition"
    _block_type_slug = "agentparty-workflow-definition"
    _description = (
        "The workflow definition an Agent Party deployment runs, stored with it so that API replicas "
        "without the definition files can serve its webhook (written by `agentparty deploy` and `serve`)."
    )

    deployment: str = Field(description="FLOW/DEPLOYMENT: the deployment this is the definition of.")
    workflow_id: str = Field(description="The definition's id (the deployment's name).")
    source: str = Field(description="The file it was deployed from, on the deploying host.")
    text: str = Field(description="That file's text when it was deployed.")
    subgraph_targets: list[str] = Field(
        default_factory=list, description="Subgraph targets that resolved next to the file when it was deployed."
    )


def block_name(deployment_id: UUID | str) -> str:
    return f"{BLOCK_NAME_PREFIX}{deployment_id}"


def store_copy(
    definition: WorkflowDefinition,
    source: Path,
    *,
    deployment: str,
    deployment_id: UUID | str,
    model_registry: ModelRegistry,
) -> None:
    """Store ``source``'s text as the copy of the deployment's definition (replacing an earlier one).

    The text is validated again here, with a context that records which subgraph
    targets resolved, so the copy holds exactly what passed. Call from synchronous code."""
    source = source.resolve()
    text = source.read_text(encoding="utf-8")
    resolved: set[str] = set()
    exists = WorkflowCatalog().exists_from(source.parent)

    def record(target: str) -> bool:
        found = exists(target)
        if found:
            resolved.add(target)
        return found

    validated = validate_document(
        parse_document(text, source),
        WorkflowDefinition,
        ValidationContext(model_registry=model_registry, workflow_exists=record),
    )
    if validated.id != definition.id:  # the file changed between loading and storing: deploy it again
        raise DocumentError(source, [FieldError("id", f"changed from {definition.id!r} while deploying", "changed")])
    copy = WorkflowDefinitionCopy(
        deployment=deployment,
        workflow_id=definition.id,
        source=str(source),
        text=text,
        subgraph_targets=sorted(resolved),
    )
    copy.save(block_name(deployment_id), overwrite=True)


@dataclass(frozen=True)
class StoredCopy:
    """One deployment's copy as read back; ``copy`` is None when the block's data is not a copy (``problem``)."""

    deployment_id: UUID
    name: str
    """The deployment's full name (or the block's name, when its data could not be read)."""
    copy: WorkflowDefinitionCopy | None
    problem: str | None = None
    updated: datetime | None = None
    """When the copy was last written (the newest of two deployments of one workflow id is the one served)."""


async def read_copies(client: PrefectClient) -> list[StoredCopy]:
    """The copies of every deployment that still exists: one request for the copies, one per 200 deployments."""
    try:
        documents = await client.read_block_documents_by_type(
            WorkflowDefinitionCopy.get_block_type_slug(), include_secrets=False
        )
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 404:  # the block type is registered by the first deploy that stores a copy
            return []
        raise
    by_deployment: dict[UUID, StoredCopy] = {}
    for document in documents:
        name = document.name or ""
        try:
            deployment_id = UUID(name.removeprefix(BLOCK_NAME_PREFIX))
        except ValueError:
            continue  # not one we wrote
        try:
            copy = WorkflowDefinitionCopy.model_validate(document.data)
        except ValidationError as exc:
            by_deployment[deployment_id] = StoredCopy(deployment_id, name, None, f"not a definition copy: {exc}")
            continue
        by_deployment[deployment_id] = StoredCopy(deployment_id, copy.deployment, copy, updated=document.updated)
    existing = await _existing(client, list(by_deployment))
    return [stored for deployment_id, stored in by_deployment.items() if deployment_id in existing]


async def _existing(client: PrefectClient, ids: list[UUID]) -> set[UUID]:
    found: set[UUID] = set()
    for start in range(0, len(ids), _PAGE):
        page = ids[start : start + _PAGE]
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=page)), limit=_PAGE
        )
        found.update(d.id for d in deployments)
    return found


def validate_copy(copy: WorkflowDefinitionCopy, model_registry: ModelRegistry) -> WorkflowDefinition:
    """The copy's definition, parsed and validated as its file is (same model registry checks); subgraph
    targets are those that resolved when it was deployed. Raises :class:`DocumentError` naming its file."""
    targets = frozenset(copy.subgraph_targets)
    definition = validate_document(
        parse_document(copy.text, Path(copy.source)),
        WorkflowDefinition,
        ValidationContext(model_registry=model_registry, workflow_exists=targets.__contains__),
    )
    if definition.id != copy.workflow_id:
        raise DocumentError(
            Path(copy.source),
            [FieldError("id", f"is {definition.id!r}, but the deployment is {copy.deployment!r}", "mismatch")],
        )
    return definition
