"""Seed 002's model registry: ModelInfo, ModelCapabilities, pricing, fallback chain.

``DEFAULT_MODEL_REGISTRY`` is the built-in catalogue used when no configuration
says otherwise; it includes the ``simulated`` models that let the engine run
with no API keys (DESIGN.md §9).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ._base import CamelModel, NonEmptyStr, PositiveStrictInt
from .graph import Model, stable_id

ModelProvider = Literal["openai", "anthropic", "google", "simulated"]


class ModelCapabilities(CamelModel):
    max_tokens: PositiveStrictInt
    """Context window in tokens."""
    supports_streaming: bool = True
    supports_functions: bool = False
    supports_vision: bool = False
    max_concurrency: PositiveStrictInt = 8
    """Calls to this model in flight at once, across all steps and runs."""


class PricingInfo(CamelModel):
    """Prices in ``currency`` per million tokens."""

    input_per_million: Annotated[float, Field(ge=0.0)]
    output_per_million: Annotated[float, Field(ge=0.0)]
    currency: Literal["USD", "EUR"] = "USD"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_million + output_tokens * self.output_per_million) / 1_000_000


class ModelInfo(CamelModel):
    name: NonEmptyStr
    provider: ModelProvider
    """Which adapter serves it (an extension of seed 002's ModelInfo: needed to detect providers from keys)."""
    capabilities: ModelCapabilities
    pricing: PricingInfo | None = None
    deprecated: bool | None = None


class ModelRegistry(CamelModel):
    default_model: NonEmptyStr
    available_models: dict[str, ModelInfo]
    auto_detection: bool = True
    """Offer only the models whose provider has a configured key (plus the simulated ones)."""
    fallback_chain: list[str] = Field(default_factory=list)
    """Models tried in order when the requested one fails for good or its circuit is open."""

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: object) -> object:
        # `availableModels: {gpt-4o: {provider: openai, ...}}` need not repeat the name.
        if isinstance(data, dict):
            for field in ("availableModels", "available_models"):
                models = data.get(field)
                if isinstance(models, dict):
                    data = {
                        **data,
                        field: {
                            key: ({"name": key, **value} if isinstance(value, dict) and "name" not in value else value)
                            for key, value in models.items()
                        },
                    }
        return data

    @model_validator(mode="after")
    def _references_are_registered(self) -> ModelRegistry:
        for key, info in self.available_models.items():
            if key != info.name:
                raise ValueError(f"availableModels.{key}: name {info.name!r} differs from its key {key!r}")
        known = ", ".join(sorted(self.available_models))
        if self.default_model not in self.available_models:
            raise ValueError(f"defaultModel {self.default_model!r} is not in availableModels ({known})")
        seen: set[str] = set()
        for index, name in enumerate(self.fallback_chain):
            if name not in self.available_models:
                raise ValueError(f"fallbackChain[{index}] {name!r} is not in availableModels ({known})")
            if name in seen:
                raise ValueError(f"fallbackChain[{index}] {name!r} appears twice")
            seen.add(name)
        return self

    def is_registered(self, name: str) -> bool:
        return name in self.available_models

    def graph_node(self, name: str) -> Model:
        """Seed 000's Model node of ``name`` (a TemplateVersion REQUIRES_MODEL it): provider, context window and
        features as registered; provider ``unknown`` (and no features) for a model the registry does not list."""
        info = self.available_models.get(name)
        if info is None:
            return Model(id=stable_id("model", name), name=name, provider="unknown")
        caps = info.capabilities
        return Model(
            id=stable_id("model", name),
            name=name,
            provider=info.provider,
            context_window=caps.max_tokens,
            supports_functions=caps.supports_functions,
            supports_vision=caps.supports_vision,
            supports_streaming=caps.supports_streaming,
            deprecated=bool(info.deprecated),
        )

    def unregistered_message(self, name: str) -> str:
        return f"model {name!r} is not registered in the model registry; registered: {', '.join(sorted(self.available_models))}"


def _model(
    name: str, provider: ModelProvider, context: int, price_in: float, price_out: float, **caps: object
) -> ModelInfo:
    return ModelInfo(
        name=name,
        provider=provider,
        capabilities=ModelCapabilities.model_validate({"max_tokens": context, **caps}),
        pricing=PricingInfo(input_per_million=price_in, output_per_million=price_out),
    )


DEFAULT_MODEL_REGISTRY = ModelRegistry(
    default_model="simulated",
    available_models={
        m.name: m
        for m in (
            _model("simulated", "simulated", 128_000, 0.0, 0.0, supports_functions=True, max_concurrency=64),
            _model("simulated-large", "simulated", 200_000, 0.0, 0.0, supports_functions=True, max_concurrency=64),
            _model("gpt-4", "openai", 8_192, 30.0, 60.0, supports_functions=True),
            _model("gpt-4o", "openai", 128_000, 2.5, 10.0, supports_functions=True, supports_vision=True),
            _model("gpt-4o-mini", "openai", 128_000, 0.15, 0.6, supports_functions=True, supports_vision=True),
            _model("gpt-4.1", "openai", 1_047_576, 2.0, 8.0, supports_functions=True, supports_vision=True),
            _model("claude-sonnet-4-5", "anthropic", 200_000, 3.0, 15.0, supports_functions=True, supports_vision=True),
            _model("claude-haiku-4-5", "anthropic", 200_000, 1.0, 5.0, supports_functions=True, supports_vision=True),
            _model("gemini-2.5-pro", "google", 1_048_576, 1.25, 10.0, supports_functions=True, supports_vision=True),
            _model("gemini-2.5-flash", "google", 1_048_576, 0.3, 2.5, supports_functions=True, supports_vision=True),
        )
    },
    fallback_chain=["simulated", "simulated-large"],
)
