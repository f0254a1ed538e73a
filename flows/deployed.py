"""Module-level entrypoints for deployed workflows (DESIGN.md §6).

A compiled workflow is built at run time from its definition, so its flow
function is a closure that Prefect's runner cannot re-import. A deployment
therefore points at an attribute of this module instead
(``agentparty.flows.deployed.wf_<id>_<hash>``); the module's ``__getattr__``
finds the definition with that id in the workflow search path and compiles it
in the flow-run process. The search path is ``AGENTPARTY_WORKFLOWS`` (directories
separated by ``os.pathsep``), else the working directory, which is what
``agentparty deploy`` and ``prefect.yaml`` set for the runs they start.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentparty.flows.compiler import compile_workflow
from agentparty.flows.entrypoints import ENTRYPOINT_PREFIX, entrypoint_for, entrypoint_name
from agentparty.runtime.documents import WorkflowCatalog, load_workflow
from agentparty.runtime.settings import Settings, get_settings
from agentparty.runtime.structured_logs import configure_logging

__all__ = ["WORKFLOWS_ENV", "definition_file", "entrypoint_for", "entrypoint_name", "load_deployed_flow", "search_dirs"]

if TYPE_CHECKING:
    from prefect import Flow

WORKFLOWS_ENV = "AGENTPARTY_WORKFLOWS"
_compiled: dict[tuple[Path, float], Flow[..., Any]] = {}


def search_dirs(settings: Settings | None = None) -> list[Path]:
    """The workflow search path (``Settings.workflows``, else the working directory)."""
    return (settings or get_settings()).workflow_dirs()


def definition_file(name: str) -> Path | None:
    """The definition file whose id maps to the entrypoint ``name``, searching :func:`search_dirs` in order."""
    catalog = WorkflowCatalog()
    for directory in search_dirs():
        for workflow_id in sorted(catalog.ids_in(directory.resolve())):
            if entrypoint_name(workflow_id) == name:
                return catalog.find(workflow_id, directory.resolve())
    return None


def load_deployed_flow(name: str) -> Flow[..., Any]:
    configure_logging(get_settings().load_sdk_configuration().monitoring.logging)  # a flow-run process: its logs
    path = definition_file(name)
    if path is None:
        searched = ", ".join(str(d) for d in search_dirs())
        raise AttributeError(
            f"no workflow definition for entrypoint {name!r} in {searched} "
            f"(set {WORKFLOWS_ENV} to the directories that hold the deployed definitions)"
        )
    key = (path, path.stat().st_mtime)
    if key not in _compiled:
        _compiled[key] = compile_workflow(load_workflow(path), source=path)
    return _compiled[key]


def __getattr__(name: str) -> Any:
    if not name.startswith(ENTRYPOINT_PREFIX):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return load_deployed_flow(name)
