"""Every data model of Agent Party: both seeds, as pydantic v2 models. No I/O happens here.

Seed 000 (graph schema, GNN structures, Kafka events, API and configuration)
uses snake_case on the wire; seed 002 (agent SDK: instances, workflows, messages,
SDK configuration) uses camelCase and also accepts snake_case.
"""

from .agent import (
    REALTIME_RESPONSE_TIME_MS,
    AgentInstance,
    AgentRuntimeState,
    ExecutionContext,
    ModelConfiguration,
    PerformanceMetrics,
    ResourceLimits,
    WorkflowState,
)
from .api import (
    AgentStateResponse,
    AgentUpdateMessage,
    AgentUpdatePayload,
    CapabilityProficiency,
    CreateAgentTemplateRequest,
    TeamConnection,
    TeamMemberView,
    TeamUpdateMessage,
    TeamUpdatePayload,
    WebSocketMessage,
    WSMessage,
)
from .config import (
    AgentRuntimeConfig,
    DatabaseConfig,
    GNNTrainingConfig,
    KafkaConfig,
    RuntimeModelSettings,
    SyntheticDataConfig,
)
from .context import ValidationContext
from .errors import FieldError, field_errors
from .events import (
    EVENT_TYPES,
    AgentProvisionedEvent,
    AgentStateTransitionEvent,
    BaseEvent,
    LifecycleEvent,
    TaskAnalyzedEvent,
    TaskSubmittedEvent,
    TeamAssembledEvent,
    TeamPerformanceEvent,
)
from .gnn import (
    AgentFeatures,
    CapabilityEdgeFeatures,
    CapabilityFeatures,
    CollaborationEdgeFeatures,
    GraphSAGEModelConfig,
    RequirementEdgeFeatures,
    TaskFeatures,
)
from .governance import ApprovalMode, GovernanceRules, TransitionRule
from .graph import (
    NODE_TYPES,
    RELATIONSHIP_TYPES,
    Agent,
    AgentStateRecord,
    AgentTemplate,
    Capability,
    FormationMethod,
    GraphNode,
    ModelParameters,
    Output,
    Task,
    Team,
    TemplateVersion,
    User,
)
from .messages import AgentMessage, AnyMessage, ErrorDetail, ErrorMessage, Message, SystemMessage, UserMessage
from .model_registry import DEFAULT_MODEL_REGISTRY, ModelCapabilities, ModelInfo, ModelRegistry, PricingInfo
from .sdk_config import SOC2_BASELINE, RateLimitConfig, SDKConfiguration, SecurityConfig
from .states import (
    AGENT_LIFECYCLE_MACHINE,
    AGENT_RUNTIME_MACHINE,
    TASK_MACHINE,
    TEAM_MACHINE,
    AgentLifecycleState,
    AgentRuntimeStatus,
    IllegalTransition,
    StateMachine,
    TaskStatus,
    TeamStatus,
)
from .workflow import (
    AnyWorkflowStep,
    BackoffStrategy,
    CircuitBreakerConfig,
    DecisionStep,
    ErrorHandlingStrategy,
    FallbackAction,
    ParallelStep,
    RetryPolicy,
    SubgraphStep,
    TaskStep,
    WorkflowDefinition,
    WorkflowStep,
    WorkflowTrigger,
)
from .workflow_graph import Problem, WorkflowGraph, analyze_definition

__all__ = [name for name in dir() if not name.startswith("_") and name[0].isupper() or name in {"field_errors", "analyze_definition"}]
