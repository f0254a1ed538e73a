"""A finished team's outcome, added to the graph's history in the run's closing transaction.

The collaboration (WORKED_WITH), proficiency (HAS_CAPABILITY) and reliability figures move by the rules of
:mod:`agentparty.models.run_history`, here in Cypher so each is read and written in one transaction, and once per
team (its ``outcome_recorded`` flag is read and set in that same transaction). Apart from
:mod:`agentparty.runtime.run_recorder`, which builds what a run writes, because this is what a run *adds*.
"""

from __future__ import annotations

from typing import Any

from agentparty.models.run_history import PROFICIENCY_PRIOR, RELIABILITY_RATE, Outcome
from agentparty.runtime.graph_store import graph_value


def apply_outcome(tx: Any, outcome: Outcome) -> bool:
    """Add the outcome unless the team's was already added; runs inside the closing transaction."""
    row = tx.run("MATCH (t:Team {id: $id}) RETURN t.outcome_recorded AS done", id=outcome.team_id).single()
    if row is None or row["done"]:
        return False
    at = graph_value(outcome.at)
    # MERGE of a relationship takes no lock that stops two transactions from both creating it, so concurrent endings
    # of teams sharing two agents could leave two WORKED_WITH edges (seen in CI). Write-locking both ends first, in
    # one order, serialises them: the second MERGE then finds the first's edge.
    ends = sorted({p["a"] for p in outcome.pairs} | {p["b"] for p in outcome.pairs})
    tx.run(
        "UNWIND $ids AS id MATCH (x:Agent {id: id}) SET x._merge_lock = true REMOVE x._merge_lock", ids=ends
    ).consume()
    tx.run(
        "UNWIND $pairs AS p MATCH (a:Agent {id: p.a}) MATCH (b:Agent {id: p.b}) "
        "MERGE (a)-[r:WORKED_WITH]->(b) "
        "ON CREATE SET r.success_score = p.score, r.task_count = 1, r.last_collaboration = $at "
        "ON MATCH SET r.success_score = (r.success_score * r.task_count + p.score) / (r.task_count + 1), "
        "r.task_count = r.task_count + 1, r.last_collaboration = $at",
        pairs=outcome.pairs,
        at=at,
    ).consume()
    # models.run_history.updated_proficiency, in Cypher (read and written in one transaction)
    tx.run(
        "UNWIND $rows AS row MATCH (a:Agent {id: row.agent})-[h:HAS_CAPABILITY]->(c:Capability {id: row.capability}) "
        "WITH h, row, toFloat(coalesce(h.usage_count, 0)) AS u, h.proficiency AS p, "
        "toFloat(coalesce(h.token_efficiency, 0.0)) AS te "
        "SET h.proficiency = (p * (u + $prior) + row.completed) / (u + $prior + row.used), "
        "h.token_efficiency = (te * u + row.tokens) / (u + row.used), "
        "h.usage_count = toInteger(u) + row.used",
        rows=outcome.capabilities,
        prior=PROFICIENCY_PRIOR,
    ).consume()
    # models.run_history.updated_reliability, in Cypher
    tx.run(
        "UNWIND $rows AS row MATCH (a:Agent {id: row.agent}) "
        "WITH a, row, a.reliability_score AS r, coalesce(a.token_count, 0) AS t "
        "SET a.reliability_score = (1.0 - $rate) * r + $rate * row.share, a.token_count = t + row.tokens",
        rows=outcome.agents,
        rate=RELIABILITY_RATE,
    ).consume()
    tx.run("MATCH (t:Team {id: $id}) SET t.outcome_recorded = true", id=outcome.team_id).consume()
    return True
