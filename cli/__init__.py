"""The ``agentparty`` command line: one module per group of commands, registered here.

Exit codes: 0 success, 1 invalid input or a failed run, 2 usage errors (click's convention).
Command modules import the engine inside their commands, so ``--help`` and ``validate`` start fast.
"""

from __future__ import annotations

import typer

from agentparty.cli import (
    agents,
    api,
    audit,
    deploy,
    events,
    gdpr,
    gnn,
    graph,
    keys,
    local,
    migrate,
    monitoring,
    run,
    templates,
    validate,
)

app = typer.Typer(
    name="agentparty",
    help="Agent Party: workflows for teams of AI agents, on Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
validate.register(app)
local.register(app)
run.register(app)
deploy.register(app)
migrate.register(app)
app.add_typer(graph.app, name="graph")
app.add_typer(templates.app, name="templates")
app.add_typer(agents.app, name="agents")
app.add_typer(gnn.app, name="gnn")
app.add_typer(events.app, name="events")
app.add_typer(api.app, name="api")
app.add_typer(audit.app, name="audit")
app.add_typer(gdpr.app, name="gdpr")
app.add_typer(keys.app, name="keys")
app.add_typer(monitoring.app, name="monitoring")
