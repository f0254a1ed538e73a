"""The names deployed workflows are imported by: ``agentparty.flows.deployed.wf_<id>_<hash>``.

Pure naming, below both the compiler (which names each flow function after its
entrypoint, so ``flow.to_deployment()`` records one the runner can re-import) and
``flows/deployed.py`` (whose module ``__getattr__`` rebuilds the flow from it).
"""

from __future__ import annotations

import hashlib
import re

ENTRYPOINT_MODULE = "agentparty.flows.deployed"
ENTRYPOINT_PREFIX = "wf_"


def entrypoint_name(workflow_id: str) -> str:
    """A Python identifier for a definition id; the hash keeps ``a-b`` and ``a_b`` apart."""
    readable = re.sub(r"\W", "_", workflow_id)
    digest = hashlib.sha256(workflow_id.encode()).hexdigest()[:8]
    return f"{ENTRYPOINT_PREFIX}{readable}_{digest}"


def entrypoint_for(workflow_id: str) -> str:
    """The module-path entrypoint a deployment of this definition uses."""
    return f"{ENTRYPOINT_MODULE}.{entrypoint_name(workflow_id)}"
