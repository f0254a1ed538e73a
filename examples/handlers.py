"""Python steps used by the example workflows (``handler: handlers:NAME``).

The engine imports handler modules that sit next to a definition file, so
examples stay self-contained. Each function is deterministic: the examples run
without network access. ``search_docs`` is also a tool the research agents call.
"""

from __future__ import annotations

from typing import Any

from docsearch import search  # next to this file: the engine puts a definition's folder on the path


def count_sources(findings: list[dict[str, Any]]) -> dict[str, int]:
    sources = {source for finding in findings for source in finding.get("sources", [])}
    return {"sources": len(sources)}


def describe_gaps(found: int, wanted: int) -> dict[str, str]:
    return {"message": f"only {found} distinct sources found, {wanted} wanted: research needs another pass"}


def collect_items(channel: str, limit: int) -> dict[str, list[dict[str, str]]]:
    items = [
        {"title": f"{channel} update {n}", "body": f"Item {n} posted in #{channel} today."}
        for n in range(1, min(limit, 5) + 1)
    ]
    return {"items": items}


def publish_digest(channel: str, summaries: list[dict[str, Any]]) -> dict[str, int]:
    return {"published": len(summaries)}


def lookup_account(ticket_id: str) -> dict[str, dict[str, str]]:
    return {"account": {"ticket_id": ticket_id, "plan": "enterprise", "owner": "support-team"}}


def similar_tickets(category: str) -> dict[str, list[str]]:
    return {"tickets": [f"{category}-101", f"{category}-87"]}


def escalate(ticket_id: str, severity: str, context: Any) -> dict[str, str]:
    return {"escalated_to": "on-call" if severity == "critical" else "tier-2"}


def search_docs(query: str, limit: int = 3) -> list[dict[str, str]]:
    """Search the research corpus (``examples/corpus``) for documents about ``query``.

    Args:
        query: What to look for: a few keywords work best.
        limit: The most documents to return (1 to 10).
    """
    return search(query, max(1, min(limit, 10)))
