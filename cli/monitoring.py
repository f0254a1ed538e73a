"""``agentparty monitoring render``: Prometheus rules, Alertmanager routes and the scrape configuration.

The files come from the SDK configuration's ``monitoring`` section
(``runtime/alert_rules.py``, ``runtime/alert_routes.py``); ``agentparty up
--monitoring`` renders them into ``HOME/monitoring`` and starts Debian's
Prometheus and Alertmanager on them. A configuration whose processes would
serve Prometheus nothing (``monitoring.metrics.exportFormats`` without
``prometheus``, or metrics off) is refused: its rules could never fire.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentparty.cli._bootstrap import fail, local, settings

app = typer.Typer(help="Alerting: Prometheus rules and Alertmanager routes from monitoring.", no_args_is_help=True)


def render_files(out: Path | None = None) -> Path:
    """Render into ``out`` (``HOME/monitoring`` by default); the folder. Exits naming a setting that cannot work."""
    from agentparty.runtime.alert_rules import MonitoringRenderError
    from agentparty.runtime.documents import DocumentError
    from agentparty.runtime.monitoring_files import default_targets, monitoring_dir, render_monitoring, scrape_warning

    config = settings()
    folder = out or monitoring_dir(config.home)
    try:
        sdk = config.load_sdk_configuration()
        files = render_monitoring(config, sdk.monitoring, folder, default_targets(config))
    except DocumentError as exc:
        raise fail(str(exc)) from None
    except MonitoringRenderError as exc:
        raise fail(f"{config.sdk_config or 'the built-in configuration'}: {exc}") from None
    for path in (files.rules, files.alertmanager, files.prometheus):
        typer.echo(f"wrote {path}")
    if (
        folder.resolve() == monitoring_dir(config.home).resolve()
    ):  # what this home's servers read: make them read it again
        servers = local()
        for name, server in (("Prometheus", servers.prometheus), ("Alertmanager", servers.alertmanager)):
            if server.reload():
                typer.echo(f"{name} reloads them")
    warning = scrape_warning(config)
    if warning is not None:
        typer.echo(f"warning: {warning}", err=True)
    return folder


@app.command()
def render(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder to write rules.yml, alertmanager.yml and prometheus.yml to.", file_okay=False
        ),
    ] = None,
) -> None:
    """Write rules.yml, alertmanager.yml and prometheus.yml (default: AGENTPARTY_HOME/monitoring)."""
    render_files(out)
