"""Seed 000's configuration models: database, Kafka, agent runtime, GNN training, synthetic data.

They are plain models; ``agentparty.runtime.settings`` fills them from the
environment (``AGENTPARTY_`` prefix) with pydantic-settings.
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from ._base import Fraction, NonEmptyStr, PositiveStrictInt, SeedModel
from .graph import ModelParameters

BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")


class DatabaseConfig(SeedModel):
    """Neo4j (or any Bolt server) connection; the same code runs against ArcadeDB and Neo4j 5."""

    uri: NonEmptyStr
    username: NonEmptyStr
    password: SecretStr
    max_connection_pool_size: Annotated[int, Field(gt=0)] = 50
    connection_timeout: Annotated[int, Field(gt=0)] = 30
    connection_acquisition_timeout: Annotated[int, Field(gt=0)] = 60
    max_transaction_retry_time: Annotated[int, Field(ge=0)] = 30

    @field_validator("uri")
    @classmethod
    def _bolt_uri(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in BOLT_SCHEMES:
            raise ValueError(f"scheme {parsed.scheme!r} is not a Bolt scheme; use one of {', '.join(BOLT_SCHEMES)}")
        if not parsed.hostname:
            raise ValueError("missing host, e.g. bolt://127.0.0.1:7687")
        return value


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]


class KafkaConfig(SeedModel):
    bootstrap_servers: Annotated[list[NonEmptyStr], Field(min_length=1), NoDecode]
    """``host:port`` list; from the environment as ``host1:9092,host2:9092``."""
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    group_id: NonEmptyStr
    auto_offset_reset: Literal["earliest", "latest", "error"] = "earliest"
    enable_auto_commit: bool = True

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_comma_list(cls, value: Any) -> Any:
        # Environment variables carry lists as "host1:9092,host2:9092".
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ValueError(f"sasl_mechanism is required with security_protocol {self.security_protocol}")
            if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
                self.sasl_username and self.sasl_password
            ):
                raise ValueError(f"sasl_username and sasl_password are required for {self.sasl_mechanism}")
        elif self.sasl_mechanism is not None:
            raise ValueError(f"sasl_mechanism needs a SASL security_protocol, not {self.security_protocol}")
        return self


Provider = Literal["openai", "anthropic", "google", "simulated"]


class RuntimeModelSettings(SeedModel):
    """One entry of ``AgentRuntimeConfig.models`` (the seed leaves the inner dict open)."""

    provider: Provider
    model: NonEmptyStr | None = None
    """Provider's model name when it differs from the registry key."""
    base_url: str | None = None
    """OpenAI-compatible endpoint (Ollama, vLLM) or a local test server."""
    parameters: ModelParameters = Field(default_factory=ModelParameters)
    max_concurrency: PositiveStrictInt | None = None
    requests_per_minute: PositiveStrictInt | None = None
    tokens_per_minute: PositiveStrictInt | None = None
    burst_limit: PositiveStrictInt | None = None
    """Calls at once before ``requestsPerMinute`` pacing starts (a tenth of the minute's allowance by default)."""
    penalty_strategy: Literal["reject", "queue", "throttle"] = "queue"
    """When the allowance is spent: wait (queue), pace evenly (throttle) or fail retryably (reject)."""


def prompt_template_problem(text: str) -> str | None:
    """Why ``text`` cannot be a prompt template (None when it can): placeholders are plain ``{names}``; write
    ``{{`` and ``}}`` for braces."""
    try:
        fields = [(field, spec, conversion) for _, field, spec, conversion in string.Formatter().parse(text)]
    except ValueError as exc:
        return f"{exc} (write {{{{ and }}}} for literal braces)"
    for field, spec, conversion in fields:
        if field is None:
            continue
        if not field.isidentifier():
            return f"placeholder {{{field}}} is not a plain name"
        if spec or conversion:
            return f"placeholder {{{field}}} takes no format spec or conversion"
    return None


class AgentRuntimeConfig(SeedModel):
    default_token_budget: Annotated[int, Field(gt=0)] = 10000
    default_timeout: Annotated[int, Field(gt=0)] = 300
    """Seconds."""
    max_consecutive_errors: Annotated[int, Field(gt=0)] = 3
    """Tool errors in a row (a failed call, a timeout, arguments that do not validate) before an agent step fails."""
    retry_backoff_seconds: Annotated[int, Field(ge=0)] = 5
    """Base delay between attempts of an agent step that has no ``retryPolicy`` of its own."""
    max_turns: Annotated[int, Field(gt=0, le=100)] = 8
    """Model turns an agent step's loop may take unless its step or template says otherwise."""
    max_tool_calls: Annotated[int, Field(gt=0, le=1000)] = 16
    """Tool calls an agent step's loop may make unless its step or template says otherwise."""
    max_parallel_tool_calls: Annotated[int, Field(gt=0, le=64)] = 4
    """Tool calls of one model turn that run at once."""
    max_delegation_depth: Annotated[int, Field(ge=0, le=5)] = 2
    """How deep ``ask_agent`` hand-offs may nest: a step's agent asks at depth 1, the agent it asked asks at depth
    2, and so on; a call past it is refused (0 turns delegation off)."""
    max_delegations: Annotated[int, Field(ge=0, le=32)] = 4
    """``ask_agent`` hand-offs one engagement (a step's agent, or an agent asked by another) may make; a call past
    it is refused."""
    context_strategy: Literal["trim", "summarize"] = "trim"
    """What an agent's loop does when its conversation outgrows the model's window: leave out the oldest turns
    (``trim``), or have the model condense them into a note first (``summarize``: a checkpointed turn, charged to
    the budgets). Either way a tool call stays with its result and the loss is noted in the conversation."""
    models: dict[str, RuntimeModelSettings] = Field(default_factory=dict)
    prompt_templates: dict[str, str] = Field(default_factory=dict)
    """Named system prompts a template version may use (``promptTemplate`` on the template): ``{name}``,
    ``{description}``, ``{personality}`` and ``{capabilities}`` are the agent's; any other ``{field}`` is the
    step's input of that name, filled in when the step runs."""

    @field_validator("prompt_templates")
    @classmethod
    def _plain_placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            problem = prompt_template_problem(text)
            if problem:
                raise ValueError(f"prompt template {name!r}: {problem}")
        return value

    capability_registry: NonEmptyStr = "builtin"
    """Where the capability definitions runs write to the graph come from: ``builtin`` (the built-in registry,
    :data:`~agentparty.models.capabilities.BUILTIN_CAPABILITY_REGISTRY`) or a path to a YAML/JSON file in the
    format of :class:`~agentparty.models.capabilities.CapabilityRegistry` (read, and refused when bad, as the
    settings load). A template's own definition of a capability wins over the registry's, field by field."""


GNN_METHODS: dict[str, str] = {"GraphSAGE": "graphsage", "NCN": "ncn"}
"""``model_type`` → the trained model's method name (its row in every table, its name in an ensemble)."""
DEFAULT_FANOUT = (15, 10)
"""Mini-batch training's neighbours per edge type and node at hop 1, then at each further hop (PyG's usual choice)."""
BASELINE_METHODS: tuple[str, ...] = ("popularity", "logistic-regression", "adamic-adar")


class NCNConfig(SeedModel):
    """Extension: the ``NCN`` model's parameters (``agentparty.gnn.ncn``), GraphSAGE's encoder with
    common-neighbour link heads in the spirit of Neural Common Neighbours (Wang et al., 2023)."""

    common_neighbours: bool = True
    """Add, in each link head, the embeddings of the pair's common neighbours: the capabilities an agent holds
    and a task requires (weighted by proficiency), and the past collaborators two agents share (weighted by
    1/log(1 + degree), as Adamic-Adar does)."""
    heuristic_prior: bool = True
    """Add a monotone term over structural scores (expected skill, Adamic-Adar, reliability, past success;
    non-negative weights), so the network starts from what the graph's structure says and learns corrections."""
    prior_weight: Annotated[float, Field(gt=0.0)] = 2.0
    """Initial weight of the expected-skill term (the other prior terms start at a tenth of it)."""
    deep_weight_init: Literal["zero", "default"] = "zero"
    """``zero``: the heads' deep part starts at zero output (the prior alone scores at epoch 0)."""
    fit_prior: bool = False
    """Fit the prior's weights to the training pairs first (L-BFGS, to convergence), then train the network
    (``prior_weight`` is then only where that fit starts). Off by default: at the seed's size the fitted weights
    learn who the assembler picked, and the selection score was lower on all five seeds tried (README)."""


class EnsembleConfig(SeedModel):
    """Extension: a declared ensemble, served when it wins validation like any method.

    Its score is the weighted average of its methods' rank-normalised scores (ranks make a probability and
    a raw count comparable). ``weights`` omitted: chosen on the validation split (a grid over the simplex)."""

    name: NonEmptyStr
    methods: Annotated[list[NonEmptyStr], Field(min_length=2)]
    weights: list[Annotated[float, Field(ge=0.0)]] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> EnsembleConfig:
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"ensemble {self.name!r}: methods must be distinct, got {self.methods}")
        if self.weights is not None:
            if len(self.weights) != len(self.methods):
                raise ValueError(f"ensemble {self.name!r}: {len(self.weights)} weights for {len(self.methods)} methods")
            if sum(self.weights) <= 0:
                raise ValueError(f"ensemble {self.name!r}: weights sum to 0")
        return self


class GNNTrainingConfig(SeedModel):
    model_type: Literal["GraphSAGE", "NCN"] = "NCN"
    """Seed 000 allows ``GraphSAGE``; ``NCN`` (the default, an extension) is the same GraphSAGE encoder with
    common-neighbour link heads (:class:`NCNConfig`): the seed's plain GraphSAGE loses to Adamic-Adar on the
    synthetic truth (README, "Recommendations")."""
    ncn: NCNConfig | None = None
    """Parameters of the ``NCN`` model (defaults when omitted); refused with ``model_type: GraphSAGE``."""
    ensembles: list[EnsembleConfig] | None = None
    """Declared ensembles, compared with the model and the baselines at promotion (extension). Omitted: one,
    ``<model>+adamic-adar``, weights chosen on validation; ``[]``: none."""
    validation_folds: Annotated[int, Field(ge=1, le=10)] = 3
    """Time folds the selection score pools (extension): fold k > 0 moves the validation window k windows back
    and retrains the model and refits the baselines on what came before it, so each fold costs one more
    training. 1 = the validation split alone."""
    hidden_channels: Annotated[int, Field(gt=0)] = 128
    num_layers: Annotated[int, Field(ge=1, le=8)] = 2
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    learning_rate: Annotated[float, Field(gt=0.0)] = 0.001
    weight_decay: Annotated[float, Field(ge=0.0)] = 5e-4
    training_mode: Literal["full", "mini-batch"] = "full"
    """``full``: each epoch is one forward of the whole training graph and one step over every labelled pair.
    ``mini-batch`` (extension): ``batch_size`` labelled pairs per optimiser step, each on a subgraph of uniformly
    sampled neighbours (``neighbour_fanout``), for graphs whose full forward is too slow or too large."""
    batch_size: Annotated[int, Field(gt=0)] = 32
    """Labelled pairs (suitability and collaboration examples together) per optimiser step in ``mini-batch`` mode.
    Refused in ``full`` mode unless it is the seed default (which every saved configuration carries)."""
    neighbour_fanout: list[Annotated[int, Field(gt=0)]] | None = None
    """``mini-batch`` only (extension): per layer, the incoming edges sampled per edge type and destination node,
    hop 1 first; one entry per layer (``num_layers``). Omitted: 15, then 10 for each further layer."""
    num_epochs: Annotated[int, Field(gt=0)] = 100
    early_stopping_patience: Annotated[int, Field(gt=0)] = 10
    validation_split: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    test_split: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    random_seed: int = 42
    use_gpu: bool = True
    """Use CUDA when present; the CPU otherwise (never an error)."""
    save_path: NonEmptyStr = "models/gnn"

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> GNNTrainingConfig:
        if self.validation_split + self.test_split >= 1.0:
            raise ValueError(
                f"validation_split + test_split = {self.validation_split + self.test_split:g} leaves no training data; "
                "their sum must be below 1"
            )
        return self

    @model_validator(mode="after")
    def _batching_applies(self) -> GNNTrainingConfig:
        if self.training_mode == "full":
            if self.batch_size != type(self).model_fields["batch_size"].default:
                raise ValueError(
                    f"batch_size applies to training_mode: mini-batch; training is full-batch: each epoch is one "
                    f"step over every labelled pair, so batch_size {self.batch_size} would be ignored "
                    "(set training_mode: mini-batch, or leave batch_size out)"
                )
            if self.neighbour_fanout is not None:
                raise ValueError(
                    "neighbour_fanout applies to training_mode: mini-batch; training is full-batch: every layer "
                    "reads all neighbours (set training_mode: mini-batch, or leave neighbour_fanout out)"
                )
        elif self.neighbour_fanout is not None and len(self.neighbour_fanout) != self.num_layers:
            raise ValueError(
                f"neighbour_fanout has {len(self.neighbour_fanout)} entries but num_layers is {self.num_layers}: "
                "give one fanout per message-passing layer"
            )
        return self

    @model_validator(mode="after")
    def _model_parts_agree(self) -> GNNTrainingConfig:
        if self.ncn is not None and self.model_type != "NCN":
            raise ValueError(f"ncn is set but model_type is {self.model_type!r}: the NCN parameters would be ignored")
        known = {*BASELINE_METHODS, self.method_name}
        names = [e.name for e in self.ensembles or []]
        for index, ensemble in enumerate(self.ensembles or []):
            unknown = [m for m in ensemble.methods if m not in known]
            if unknown:
                raise ValueError(
                    f"ensembles[{index}] ({ensemble.name!r}) names {unknown}: methods are {sorted(known)} "
                    f"(the trained model is {self.method_name!r} with model_type {self.model_type!r})"
                )
            if ensemble.name in known or names.count(ensemble.name) > 1:
                raise ValueError(f"ensembles[{index}]: name {ensemble.name!r} is already taken")
        return self

    @property
    def method_name(self) -> str:
        """The trained model's name as a method (``graphsage`` or ``ncn``)."""
        return GNN_METHODS[self.model_type]

    @property
    def declared_ensembles(self) -> list[EnsembleConfig]:
        if self.ensembles is not None:
            return self.ensembles
        return [EnsembleConfig(name=f"{self.method_name}+adamic-adar", methods=[self.method_name, "adamic-adar"])]

    @property
    def fanout(self) -> list[int]:
        """Neighbours sampled per layer in ``mini-batch`` mode: ``neighbour_fanout``, or 15 then 10 per further layer."""
        if self.neighbour_fanout is not None:
            return list(self.neighbour_fanout)
        return [DEFAULT_FANOUT[0], *[DEFAULT_FANOUT[1]] * (self.num_layers - 1)]

    @property
    def ncn_parameters(self) -> NCNConfig:
        return self.ncn or NCNConfig()


class SyntheticDataConfig(SeedModel):
    num_agents: Annotated[int, Field(ge=2)] = 50
    num_capabilities: Annotated[int, Field(ge=1)] = 20
    num_tasks: Annotated[int, Field(ge=1)] = 100
    num_teams: Annotated[int, Field(ge=1)] = 30
    capability_distribution: Literal["zipf", "uniform"] = "zipf"
    collaboration_density: Fraction = 0.3
    success_rate_mean: Fraction = 0.7
    success_rate_std: Annotated[float, Field(ge=0.0, le=0.5)] = 0.15
    random_seed: int = 42
