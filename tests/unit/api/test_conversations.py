"""``GET /agents/{id}/engagements`` and ``…/messages`` over the conversation store the workers write (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from support.api_support import auth

from agentparty.models.agent import WorkflowState
from agentparty.models.messages import AgentMessage, SystemMessage, UserMessage
from agentparty.runtime.conversations import ConversationStore

AGENT = "agent-1"


def seeded(home: Path, messages: int) -> str:
    store = ConversationStore.at(home)
    key = store.begin(
        AGENT, '["run-1", "draft"]', "run-1", "draft", WorkflowState(workflow_id="report", run_id="run-1")
    )
    said = [SystemMessage(content="You are a writer."), UserMessage(content="Write.", user_id="u", session_id="s")]
    said += [AgentMessage(content=f"draft {n}", agent_id=AGENT, model="gpt-4o") for n in range(messages - 2)]
    store.append(key, said)
    return key


def test_an_engagements_messages_are_paged_in_order(make_app: Any, api_home: Path) -> None:
    key = seeded(api_home, 12)
    with TestClient(make_app()) as client:
        listed = client.get(f"/agents/{AGENT}/engagements", headers=auth("viewer"))
        assert listed.status_code == 200, listed.text
        [engagement] = listed.json()
        assert engagement["id"] == key and engagement["messages"] == 12
        assert engagement["currentWorkflow"]["workflowId"] == "report" and engagement["slot"] == "draft"

        page = client.get(
            f"/agents/{AGENT}/engagements/{key}/messages", params={"offset": 2, "limit": 5}, headers=auth("viewer")
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == 12 and body["offset"] == 2
        assert [m["content"] for m in body["messages"]] == [f"draft {n}" for n in range(5)]
        assert body["messages"][0]["type"] == "agent" and body["messages"][0]["agentId"] == AGENT


def test_another_agents_engagement_is_404_and_a_key_is_needed(make_app: Any, api_home: Path) -> None:
    key = seeded(api_home, 3)
    with TestClient(make_app()) as client:
        assert client.get(f"/agents/{AGENT}/engagements/{key}/messages").status_code == 401
        other = client.get(f"/agents/agent-2/engagements/{key}/messages", headers=auth("viewer"))
        assert other.status_code == 404 and "has no engagement" in other.json()["detail"]
        assert client.get("/agents/agent-2/engagements", headers=auth("viewer")).json() == []
        too_many = client.get(f"/agents/{AGENT}/engagements/{key}/messages?limit=201", headers=auth("viewer"))
        assert too_many.status_code == 422
