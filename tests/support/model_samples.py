"""One fully populated sample document per top-level model; together they reach every model class.

``test_roundtrip`` checks that coverage, so a new model without a sample fails the suite.
"""

from __future__ import annotations

from typing import Any

from agentparty.models.api import AGENT_STATE_RESPONSE_EXAMPLE, CREATE_AGENT_TEMPLATE_EXAMPLE
from support.workflow_docs import two_step_workflow

AGENT_ID = "0b6c1b7e-5a55-4d0e-9d37-3b1f4f3a9a01"
TEMPLATE_ID = "7f0e2c4d-1b2a-4c3d-8e9f-0a1b2c3d4e5f"
TASK_ID = "3c9d2e1f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
TEAM_ID = "5e4d3c2b-1a09-4877-a665-544332211000"
NOW = "2026-11-23T09:00:00Z"

FULL_WORKFLOW: dict[str, Any] = {
    "id": "full",
    "name": "Every step and trigger kind",
    "description": "d",
    "version": "2",
    "inputs": {"items": {"type": "array", "default": [1, 2]}, "mode": {"type": "string", "default": "full"}},
    "steps": [
        {
            "id": "agent",
            "type": "task",
            "configuration": {
                "agent": "researcher",
                "version": "1.0.0",
                "prompt": "p ${inputs.mode}",
                "capability": "data_analysis",
                "model": "simulated",
                "outputSchema": {"type": "object", "properties": {"score": {"type": "number"}}},
            },
            "timeout": 10,
            "retryPolicy": {
                "maxAttempts": 3,
                "baseDelay": 1,
                "maxDelay": 5,
                "jitter": False,
                "backoffStrategy": "linear",
            },
        },
        {
            "id": "gate",
            "type": "decision",
            "configuration": {"condition": "steps.agent.outputs.score > 0.5", "then": ["fan"], "else": ["sub"]},
        },
        {
            "id": "fan",
            "type": "parallel",
            "configuration": {
                "forEach": "${inputs.items}",
                "maxConcurrency": 2,
                "step": {
                    "id": "each",
                    "type": "task",
                    "configuration": {"handler": "handlers:each"},
                    "inputs": {"x": "${item}"},
                },
            },
        },
        {"id": "sub", "type": "subgraph", "configuration": {"workflow": "other", "inputs": {"a": "${inputs.mode}"}}},
        {"id": "a", "type": "task", "configuration": {"handler": "handlers:a"}},
        {"id": "b", "type": "task", "configuration": {"handler": "handlers:b", "dependsOn": ["a"]}},
        {"id": "group", "type": "parallel", "configuration": {"steps": ["a", "b"]}},
        {
            "id": "subs",
            "type": "parallel",
            "configuration": {
                "forEach": [1, 2],
                "failFast": False,
                "step": {"type": "subgraph", "configuration": {"workflow": "other", "inputs": {"n": "${item}"}}},
            },
        },
    ],
    "triggers": [
        {"type": "manual", "configuration": {"parameters": {"mode": "quick"}}},
        {"type": "schedule", "configuration": {"cron": "0 2 * * *", "timezone": "Europe/Berlin"}},
        {
            "type": "event",
            "configuration": {
                "expect": ["agentparty.task_submitted"],
                "match": {"prefect.resource.id": "agentparty.task.*", "agentparty.workflow": "intake"},
                "parameters": {"mode": "{{ event.payload.mode }}"},
            },
        },
        {
            "type": "event",
            "configuration": {
                "expect": ["agentparty.kafka.agentparty.tasks"],
                "parameters": {"mode": "{{ event.payload.message.payload.mode }}"},
                "kafka": {"topic": "agentparty.tasks", "filter": {"payload.priority": 5}},
            },
        },
        {"type": "webhook", "configuration": {"secretName": "HOOK_SECRET"}},
    ],
    "errorHandling": {
        "retryAttempts": 2,
        "backoffStrategy": "exponential",
        "fallbackAction": "human_intervention",
        "circuitBreaker": {"failureThreshold": 3, "recoveryTimeout": 30, "halfOpenMaxCalls": 1},
    },
    "parallel": True,
    "maxConcurrency": 4,
    "tags": ["t"],
}

MESSAGES: list[dict[str, Any]] = [
    {"id": "m1", "type": "user", "content": "hi", "timestamp": NOW, "userId": "u", "sessionId": "s"},
    {
        "id": "m2",
        "type": "agent",
        "content": "hello",
        "timestamp": NOW,
        "agentId": AGENT_ID,
        "model": "simulated",
        "confidence": 0.9,
        "streaming": False,
    },
    {
        "id": "m3",
        "type": "system",
        "content": "note",
        "timestamp": NOW,
        "level": "warn",
        "code": "W1",
        "metadata": {"k": 1},
    },
    {
        "id": "m4",
        "type": "error",
        "content": "boom",
        "timestamp": NOW,
        "recoverable": True,
        "error": {"code": "E1", "message": "failed", "details": {"status": 500}, "suggestions": ["retry later"]},
    },
    {
        "id": "m5",
        "type": "agent",
        "content": "",
        "timestamp": NOW,
        "agentId": AGENT_ID,
        "model": "gemini-2.5-pro",
        "toolCalls": [{"id": "c1", "name": "search_docs", "arguments": {"query": "gnn"}, "signature": "c2ln"}],
    },
    {
        "id": "m6",
        "type": "system",
        "content": "[]",
        "timestamp": NOW,
        "code": "tool_result",
        "toolResult": {"call_id": "c1", "name": "search_docs", "content": "[]", "truncated": False},
    },
]

TOOLS: dict[str, dict[str, Any]] = {
    "AgentTooling": {
        "tools": ["handlers:search_docs", {"function": "tools.pay:charge", "name": "pay", "needsApproval": True}],
        "mcpServers": [
            {"name": "docs", "command": ["python", "mcp_docs_server.py"], "env": {"TOKEN": "${DOCS_TOKEN}"}},
            {"name": "remote", "url": "https://mcp.example.com/mcp", "headerEnv": {"Authorization": "MCP_TOKEN"}},
        ],
        "permissions": ["tools:search_docs", "!tools:pay"],
        "maxTurns": 6,
        "maxToolCalls": 12,
    },
    "ToolSpec": {"name": "search_docs", "description": "Search", "parameters": {"type": "object"}, "source": "mcp"},
    "TurnRecord": {
        "turn": 1,
        "model": "simulated",
        "input_tokens": 10,
        "output_tokens": 5,
        "tool_calls": [
            {"call_id": "c1", "name": "search_docs", "source": "mcp", "server": "docs", "arguments": "{}", "ok": True}
        ],
    },
}

AGENT_INSTANCE: dict[str, Any] = {
    "id": AGENT_ID,
    "model": {
        "provider": "openai",
        "model": "gpt-4o",
        "version": "2024-08-06",
        "parameters": {"temperature": 0.2, "max_tokens": 500, "top_p": 0.9, "stop": ["END"], "seed": 7},
        "capabilities": {
            "maxTokens": 128000,
            "supportsStreaming": True,
            "supportsFunctions": True,
            "supportsVision": False,
            "maxConcurrency": 4,
        },
    },
    "state": {
        "messages": MESSAGES,
        "currentWorkflow": {
            "workflowId": "full",
            "runId": "r1",
            "currentStep": "agent",
            "status": "running",
            "startedAt": NOW,
        },
        "memory": {"facts": ["a", 1, {"b": None}]},
        "status": "processing",
    },
    "context": {
        "sessionId": "s1",
        "userId": "u1",
        "permissions": ["workflows:read"],
        "resourceLimits": {"maxMemory": 256, "maxCpu": 0.5, "maxConnections": 4, "maxTokensPerMinute": 20000},
        "timeout": 60,
    },
    "performance": {"responseTime": 120.5, "tokensUsed": 10, "requestsCompleted": 2, "errorRate": 0.0, "uptime": 3600},
    "createdAt": NOW,
    "lastActivity": NOW,
}

SDK_CONFIGURATION: dict[str, Any] = {
    "authentication": {
        "providers": [
            {
                "name": "openai-main",
                "type": "openai",
                "authentication": {"type": "api_key", "configuration": {"apiKeyEnv": "OPENAI_API_KEY"}},
                "models": [{"name": "gpt-4o", "provider": "openai", "capabilities": {"maxTokens": 128000}}],
            },
            {
                "name": "gateway",
                "type": "anthropic",
                "endpoint": "https://llm-gateway.example.com",
                "authentication": {"type": "bearer_token", "configuration": {"tokenEnv": "GATEWAY_TOKEN"}},
            },
            {
                "name": "google-sso",
                "type": "google",
                "authentication": {
                    "type": "oauth2",
                    "configuration": {
                        "clientId": "cid",
                        "scopes": ["a"],
                        "redirectUri": "https://app.example.com/cb",
                        "tokenEndpoint": "https://oauth2.example.com/token",
                    },
                },
            },
        ],
        "defaultProvider": "openai-main",
        "oauth2": {
            "clientId": "cid",
            "scopes": ["openid"],
            "redirectUri": "http://localhost:8080/callback",
            "tokenEndpoint": "https://auth.example.com/token",
        },
        "apiKeyRotation": {"enabled": True, "rotationInterval": 24, "maxAge": 48},
    },
    "models": {
        "defaultModel": "simulated",
        "availableModels": {
            "simulated": {"name": "simulated", "provider": "simulated", "capabilities": {"maxTokens": 1000}},
            "gpt-4o": {
                "name": "gpt-4o",
                "provider": "openai",
                "capabilities": {"maxTokens": 128000, "maxConcurrency": 2},
                "pricing": {"inputPerMillion": 2.5, "outputPerMillion": 10, "currency": "USD"},
                "deprecated": False,
            },
        },
        "autoDetection": True,
        "fallbackChain": ["gpt-4o", "simulated"],
    },
    "workflows": {
        "workflows": {"minimal": two_step_workflow(id="minimal")},
        "templates": [
            {
                "name": "review",
                "description": "d",
                "category": "quality",
                "steps": [
                    {
                        "type": "task",
                        "name": "review",
                        "description": "d",
                        "configurationTemplate": {"agent": "{{agent}}"},
                    }
                ],
            }
        ],
        "customWorkflows": True,
    },
    "communication": {
        "realtime": {"protocol": "sse", "maxLatency": 100, "bufferSize": 64, "heartbeatInterval": 1000},
        "batching": {"enabled": True, "maxBatchSize": 10, "maxWaitTime": 5, "flushInterval": 10},
        "connectionPool": {"maxConnections": 5, "idleTimeout": 1000, "maxReuseCount": 1000},
        "protocols": [],  # every entry is refused (tests/unit/models/test_communication_config.py)
    },
    "monitoring": {
        "metrics": {
            "enabled": True,
            "collectionInterval": 1000,
            "retentionPeriod": 24,
            "exportFormats": ["prometheus"],
        },
        "logging": {
            "level": "info",
            "format": "json",
            "structured": True,
            "compliance": {"soc2": True, "gdpr": True, "auditTrail": True, "dataRetention": 30},
        },
        "alerts": [
            {
                "type": "performance",
                "threshold": 200,
                "severity": "high",
                "channels": [
                    {
                        "type": "email",
                        "configuration": {
                            "recipients": ["ops@example.com"],
                            "smarthost": "smtp.example.com:587",
                            "from": "alerts@example.com",
                        },
                    },
                    {
                        "type": "slack",
                        "configuration": {"webhookUrl": "https://hooks.slack.com/services/x", "channel": "#ops"},
                    },
                    {
                        "type": "webhook",
                        "configuration": {"url": "https://alerts.example.com/in", "secretName": "ALERT_SECRET"},
                    },
                    {
                        "type": "sms",
                        "configuration": {
                            "phoneNumbers": ["+4915112345678"],
                            "gatewayUrl": "https://sms.example.com/send",
                        },
                    },
                ],
            }
        ],
        "performanceThresholds": {"maxResponseTime": 200, "maxErrorRate": 1, "minThroughput": 5, "maxMemoryUsage": 80},
    },
    "security": {
        "encryption": {"algorithm": "ChaCha20-Poly1305", "keyRotation": True, "atRest": True, "inTransit": True},
        "accessControl": {
            "rbac": True,
            "permissions": [{"resource": "workflows", "actions": ["read", "create"], "conditions": {"owner": "self"}}],
            "rateLimiting": {"enabled": True, "requestsPerMinute": 100, "burstLimit": 10, "penaltyStrategy": "queue"},
        },
        "auditLogging": True,
        "dataMasking": True,
    },
    "versioning": {
        "semantic": True,
        "autoDetection": False,
        "compatibilityMatrix": [
            {"fromVersion": "1.0.0", "toVersion": "2.0.0", "breakingChanges": True, "migrationRequired": True}
        ],
        "migrationStrategy": {"type": "manual", "rollbackSupport": True, "dataBackup": True},
    },
    "tools": {
        "allowedModules": ["handlers", "acme.tools.*"],
        "allowedCommands": ["npx -y @modelcontextprotocol/server-filesystem"],
        "allowedUrls": ["https://mcp.example.com/"],
        "mcpServers": [{"name": "files", "command": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv"]}],
    },
}

GRAPH_NODES: dict[str, dict[str, Any]] = {
    "Agent": {
        "id": AGENT_ID,
        "name": "Alpha",
        "status": "running",
        "created_at": NOW,
        "updated_at": NOW,
        "personality": "calm",
        "model": "gpt-4o",
        "parameters": {"temperature": 0.3, "vendor_knob": 1},
        "cost_profile": {"avg_input_tokens": 100, "avg_output_tokens": 50, "cost_per_call_usd": 0.01},
        "reliability_score": 0.9,
        "token_count": 1000,
        "embeddings": [0.1, 0.2],
    },
    "AgentTemplate": {
        "id": TEMPLATE_ID,
        "name": "Research Assistant",
        "description": "d",
        "created_at": NOW,
        "created_by": "alice",
        "status": "published",
        "version_count": 2,
        "is_auto_generated": False,
        "approval_required": True,
        "template_category": "research",
        "governance_rules": CREATE_AGENT_TEMPLATE_EXAMPLE["governance_rules"],
    },
    "TemplateVersion": {
        "id": "11111111-2222-4333-8444-555555555555",
        "template_id": TEMPLATE_ID,
        "version": "1.2.0-rc.1+build.5",
        "created_at": NOW,
        "model": "gpt-4o",
        "parameters": {"max_tokens": 100},
        "personality": "p",
        "cost_profile": {},
        "performance_metrics": {
            "tasks_completed": 3,
            "success_rate": 0.66,
            "avg_response_time_ms": 120,
            "avg_tokens_per_task": 900,
        },
        "is_deprecated": False,
    },
    "Team": {
        "id": TEAM_ID,
        "name": "Team A",
        "created_at": NOW,
        "status": "active",
        "size": 2,
        "task_id": TASK_ID,
        "formation_method": "recommended",
        "performance_score": 0.8,
        "token_budget": 5000,
        "token_usage": 1200,
        "completion_time": 60,
    },
    "Task": {
        "id": TASK_ID,
        "title": "Report",
        "description": "d",
        "created_at": NOW,
        "status": "in_progress",
        "priority": 4,
        "complexity": 0.7,
        "required_capabilities": ["data_analysis"],
        "created_by": AGENT_ID,
        "estimated_completion": NOW,
        "completed_at": None,
        "token_budget": 5000,
        "token_usage": 10,
    },
    "Capability": {
        "id": "22222222-3333-4444-8555-666666666666",
        "name": "data_analysis",
        "description": "d",
        "category": "analysis",
        "created_at": NOW,
        "token_cost": 300,
        "required_model": "gpt-4o",
        "embeddings": [0.5],
        "compatibility": ["report_generation"],
    },
    "AgentState": {
        "id": "33333333-4444-4555-8666-777777777777",
        "name": "running",
        "timestamp": NOW,
        "duration": 12,
        "transition_reason": "started",
        "token_count": 40,
        "metrics": {"requests": 1, "errors": 0, "input_tokens": 20, "output_tokens": 20},
        "notes": "n",
    },
    "User": {
        "id": "44444444-5555-4666-8777-888888888888",
        "username": "alice",
        "email": "alice@example.com",
        "created_at": NOW,
        "roles": ["admin"],
        "preferences": {"default_model": "simulated", "notification_channels": ["email"]},
        "token_budget": 100000,
        "approved_capabilities": ["data_analysis"],
    },
    "Model": {"id": "55555555-6666-4777-8888-999999999999", "name": "gpt-4o", "provider": "openai"},
    "Output": {
        "id": "66666666-7777-4888-8999-aaaaaaaaaaaa",
        "step_id": "draft",
        "content": "{}",
        "format": "json",
        "model": "simulated",
        "simulated": True,
        "input_tokens": 10,
        "output_tokens": 20,
        "created_at": NOW,
    },
    "SystemActor": {"id": "77777777-8888-4999-8aaa-bbbbbbbbbbbb", "name": "governance", "kind": "governance"},
    "Tool": {"id": "88888888-9999-4aaa-8bbb-cccccccccccc", "name": "search_docs", "source": "mcp", "server": "docs"},
}

RELATIONSHIPS: dict[str, dict[str, Any]] = {
    "INSTANTIATES": {},
    "HAS_STATE": {"timestamp": NOW},
    "TRANSITIONED_BY": {"timestamp": NOW, "state_id": "33333333-4444-4555-8666-777777777777"},
    "HAS_CAPABILITY": {"proficiency": 0.85, "usage_count": 3, "token_efficiency": 120.0},
    "CREATED": {"timestamp": NOW},
    "HAS_VERSION": {},
    "DEFINES_CAPABILITIES": {"proficiency": 0.5},
    "REQUIRES_MODEL": {},
    "MEMBER_OF": {"role": "lead", "joined_at": NOW},
    "WORKS_ON": {},
    "ASSEMBLED_BY": {},
    "REQUIRES": {"importance": 0.9, "complexity": 0.4},
    "REQUESTED_BY": {},
    "RESULTED_IN": {},
    "WORKED_WITH": {"success_score": 0.75, "task_count": 4, "last_collaboration": NOW},
    "USED_TOOL": {
        "task_id": "99999999-aaaa-4bbb-8ccc-dddddddddddd",
        "step_id": "research[history]",
        "calls": 3,
        "errors": 1,
        "refused": 1,
        "last_used": NOW,
    },
    "ASKED": {
        "task_id": "99999999-aaaa-4bbb-8ccc-dddddddddddd",
        "step_id": "draft",
        "questions": 2,
        "answers": 1,
        "last_asked": NOW,
    },
}

EVENTS: list[dict[str, Any]] = [
    {
        "event_id": "e1",
        "event_type": "agent_provisioned",
        "event_version": "1.0",
        "timestamp": NOW,
        "producer": "agentparty",
        "correlation_id": "run-1",
        "payload": {
            "agent_id": AGENT_ID,
            "template_id": TEMPLATE_ID,
            "template_version": "1.0.0",
            "provisioner": "workflow",
            "parameters": {"temperature": 0.3},
            "resource_allocation": {
                "token_budget": 1000,
                "max_tokens_per_minute": 100,
                "max_concurrency": 2,
                "timeout_seconds": 60,
            },
        },
    },
    {
        "event_id": "e2",
        "event_type": "agent_state_transition",
        "timestamp": NOW,
        "correlation_id": "run-1",
        "payload": {
            "agent_id": AGENT_ID,
            "previous_state": "initialized",
            "new_state": "running",
            "transition_reason": "start",
            "transition_approver": "governance",
            "token_count": 0,
            "duration": 3,
            "metrics": {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0},
        },
    },
    {
        "event_id": "e3",
        "event_type": "team_assembled",
        "timestamp": NOW,
        "correlation_id": "run-1",
        "payload": {
            "team_id": TEAM_ID,
            "task_id": TASK_ID,
            "assembler_id": "recommender",
            "member_count": 2,
            "formation_method": "auto",
            "agent_roles": {AGENT_ID: "lead"},
            "token_budget": 5000,
            "estimated_completion_time": NOW,
        },
    },
    {
        "event_id": "e4",
        "event_type": "team_performance",
        "timestamp": NOW,
        "correlation_id": "run-1",
        "payload": {
            "team_id": TEAM_ID,
            "task_id": TASK_ID,
            "success_rating": 0.9,
            "completion_time": 30,
            "token_usage": 900,
            "budget_variance": -10.0,
            "collaboration_metrics": {"pair_count": 1, "mean_pair_success": 0.8, "messages_exchanged": 4},
            "capability_metrics": {"required": ["a"], "covered": ["a"], "coverage": 1.0},
        },
    },
    {
        "event_id": "e5",
        "event_type": "task_submitted",
        "timestamp": NOW,
        "correlation_id": "run-1",
        "payload": {
            "task_id": TASK_ID,
            "title": "Report",
            "description": "d",
            "submitted_by": "alice",
            "priority": 2,
            "token_budget": 100,
            "deadline": NOW,
        },
    },
    {
        "event_id": "e6",
        "event_type": "task_analyzed",
        "timestamp": NOW,
        "correlation_id": "run-1",
        "payload": {
            "task_id": TASK_ID,
            "analyzer_id": "analyzer",
            "extracted_capabilities": ["a"],
            "complexity": 0.5,
            "token_estimate": 800,
            "time_estimate": 60,
            "recommended_team_size": 2,
        },
    },
    {
        "event_id": "e7",
        "event_type": "step_retried",
        "timestamp": NOW,
        "correlation_id": "run-1",
        "payload": {
            "workflow_id": "research-report",
            "workflow_version": "1.0.0",
            "run_key": "run-1",
            "task_id": TASK_ID,
            "step_id": "research[history]",
            "attempt": 2,
            "reason": "503",
            "tokens": 0,
            "duration_s": 0.4,
        },
    },
    {
        "event_id": "e8",
        "event_type": "circuit_breaker_opened",
        "timestamp": NOW,
        "correlation_id": "run-1",
        "payload": {"target": "agent:writer@simulated", "previous_state": "closed", "new_state": "open", "failures": 5},
    },
    {
        "event_id": "e9",
        "event_type": "tool_completed",
        "timestamp": NOW,
        "correlation_id": "run-1",
        "payload": {
            "agent_id": AGENT_ID,
            "task_id": TASK_ID,
            "run_key": "run-1",
            "step_id": "research[history]",
            "turn": 2,
            "call_id": "c1",
            "tool": "search_docs",
            "arguments": '{"query": "gnn"}',
            "ok": True,
            "result": "[]",
            "duration_ms": 3.5,
        },
    },
]

WS_MESSAGES: list[dict[str, Any]] = [
    {
        "message_type": "agent_update",
        "timestamp": NOW,
        "payload": {
            "agent_id": AGENT_ID,
            "previous_state": "initialized",
            "new_state": "running",
            "svg": "<svg/>",
            "animation_type": "pulse",
            "token_usage": 10,
            "message": None,
        },
    },
    {
        "message_type": "team_update",
        "timestamp": NOW,
        "payload": {
            "team_id": TEAM_ID,
            "status": "active",
            "members": [{"agent_id": AGENT_ID, "name": "Alpha", "role": "lead", "state": "running"}],
            "connections": [{"source": AGENT_ID, "target": AGENT_ID, "strength": 0.5}],
            "task_progress": 0.5,
            "message": "half way",
        },
    },
]

CONFIGS: dict[str, dict[str, Any]] = {
    "DatabaseConfig": {"uri": "bolt://127.0.0.1:7687", "username": "neo4j", "password": "secret-pass"},
    "KafkaConfig": {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "u",
        "sasl_password": "p",
        "group_id": "g",
        "auto_offset_reset": "latest",
        "enable_auto_commit": False,
    },
    "AgentRuntimeConfig": {
        "default_token_budget": 5000,
        "models": {
            "local": {
                "provider": "openai",
                "model": "llama3",
                "base_url": "http://127.0.0.1:11434/v1",
                "parameters": {"temperature": 0},
                "max_concurrency": 2,
                "requests_per_minute": 60,
                "tokens_per_minute": 10000,
            }
        },
        "prompt_templates": {"research": "Research {topic}"},
        "capability_registry": "builtin",
    },
    "GNNTrainingConfig": {
        "use_gpu": False,
        "num_epochs": 5,
        "model_type": "NCN",
        "ncn": {"common_neighbours": True, "heuristic_prior": True, "prior_weight": 2.0, "deep_weight_init": "zero"},
        "ensembles": [{"name": "blend", "methods": ["ncn", "adamic-adar"], "weights": [0.5, 0.5]}],
        "validation_folds": 2,
        "training_mode": "mini-batch",
        "batch_size": 64,
        "neighbour_fanout": [15, 10],
    },
    "SyntheticDataConfig": {"num_agents": 10, "capability_distribution": "uniform"},
}

FEATURES: dict[str, dict[str, Any]] = {
    "AgentFeatures": {
        "reliability_score": 0.9,
        "capability_count": 3,
        "avg_proficiency": 0.7,
        "token_efficiency": 800.0,
        "embeddings": [0.1],
    },
    "CapabilityFeatures": {"token_cost": 300, "usage_frequency": 0.2, "compatibility_count": 1, "embeddings": [0.2]},
    "TaskFeatures": {
        "complexity": 0.5,
        "priority": 3,
        "capability_count": 2,
        "token_budget": 1000,
        "embeddings": [0.3],
    },
    "CollaborationEdgeFeatures": {"success_score": 0.8, "task_count": 2, "recency": 0.9, "compatibility": 0.5},
    "CapabilityEdgeFeatures": {"proficiency": 0.7, "usage_count": 4, "token_efficiency": 100.0},
    "RequirementEdgeFeatures": {"importance": 1.0, "complexity": 0.4},
    "GraphSAGEModelConfig": {"edge_types": [["Agent", "WORKED_WITH", "Agent"]], "aggregation": "max"},
}

API: dict[str, dict[str, Any]] = {
    "CreateAgentTemplateRequest": CREATE_AGENT_TEMPLATE_EXAMPLE,
    "AgentStateResponse": AGENT_STATE_RESPONSE_EXAMPLE,
}
