"""Whole-definition analysis: references, dependencies, branches, cycles (networkx).

:func:`analyze_definition` is the single place that decides which step waits for
which; the validator reports its problems and the compiler schedules from the
same :class:`WorkflowGraph`, so what validates is exactly what runs.

Dependency edges (``a → b`` means b waits for a):

* a reference ``${steps.a…}`` in b's inputs or configuration, or ``steps.a`` in
  b's decision condition; a reference inside a forEach inline step counts for
  its parallel step;
* ``configuration.dependsOn: [a]`` on b;
* decision d lists b under ``then``/``else``: ``d → b``;
* parallel p lists child c: ``c → p`` (p finishes when its children have).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import networkx as nx
from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .context import ValidationContext
from .error_handling import ErrorHandlingStrategy
from .references import Reference, ReferenceSyntaxError, iter_references, references_in_string
from .workflow_steps import DecisionStep, ParallelStep, SubgraphStep, TaskStep, WorkflowStep


class WorkflowDefinition(Protocol):
    """What the analysis reads of a definition (``models.workflow.WorkflowDefinition``, whose own validator
    runs this analysis: a protocol rather than an import keeps the two modules from importing each other)."""

    @property
    def steps(self) -> Sequence[WorkflowStep]: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...
    @property
    def error_handling(self) -> ErrorHandlingStrategy | None: ...
    def is_non_trivial(self) -> bool: ...


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where (a field path) and why."""

    path: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "code": self.code}


@dataclass
class WorkflowGraph:
    order: list[str]
    """Top-level step ids in a dependency-respecting order (definition order where free)."""
    dependencies: dict[str, frozenset[str]]
    """Step id → the steps it waits for."""
    branch_of: dict[str, tuple[str, str]]
    """Step id → (decision id, "then" | "else") for steps on a decision branch."""
    parallel_parent: dict[str, str]
    """Child step id → the parallel step that runs it."""
    references: dict[str, list[Reference]] = field(default_factory=dict)
    """Step id → references in its inputs/configuration (inline forEach steps under their own id)."""
    condition_steps: dict[str, frozenset[str]] = field(default_factory=dict)
    """Decision id → steps its condition reads."""
    graph: nx.DiGraph[str] = field(default_factory=nx.DiGraph)


def _path(*parts: str | int) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@lru_cache(maxsize=1)
def _jinja_env() -> Any:

    return ImmutableSandboxedEnvironment()


def condition_chains(condition: str) -> list[tuple[str, ...]]:
    """Attribute chains rooted at a name in a condition: ``steps.a.outputs.x`` → ("steps", "a", "outputs", "x").

    Raises jinja2's TemplateSyntaxError for an expression that does not parse.
    """

    env = _jinja_env()
    parser = Parser(env, condition, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)

    chains: list[tuple[str, ...]] = []

    def flatten(node: Any) -> tuple[tuple[str, ...], list[Any]] | None:
        parts: list[str] = []
        extra: list[Any] = []
        while isinstance(node, (nodes.Getattr, nodes.Getitem)):
            if isinstance(node, nodes.Getattr):
                parts.append(node.attr)
            elif isinstance(node.arg, nodes.Const):
                parts.append(str(node.arg.value))
            else:
                parts.clear()  # dynamic index: keep only the part before it
                extra.append(node.arg)
            node = node.node
        if isinstance(node, nodes.Name):
            return (node.name, *reversed(parts)), extra
        return None

    def visit(node: Any) -> None:
        if isinstance(node, (nodes.Getattr, nodes.Getitem)):
            flat = flatten(node)
            if flat is not None:
                chains.append(flat[0])
                for sub in flat[1]:
                    visit(sub)
                return
        if isinstance(node, nodes.Name):
            chains.append((node.name,))
            return
        for child in node.iter_child_nodes():
            visit(child)

    visit(expr)
    return chains


class _Analyzer:
    def __init__(self, definition: WorkflowDefinition, context: ValidationContext | None) -> None:
        self.d = definition
        self.context = context
        self.problems: list[Problem] = []
        self.index: dict[str, int] = {}
        self.inline_owner: dict[str, str] = {}
        self.graph: nx.DiGraph[str] = nx.DiGraph()
        self.branch_of: dict[str, tuple[str, str]] = {}
        self.parallel_parent: dict[str, str] = {}
        self.references: dict[str, list[Reference]] = {}
        self.condition_steps: dict[str, frozenset[str]] = {}

    def add(self, path: str, message: str, code: str = "invalid") -> None:
        self.problems.append(Problem(path, message, code))

    # -- ids ---------------------------------------------------------------------

    def collect_ids(self) -> None:
        seen: dict[str, str] = {}
        for i, step in enumerate(self.d.steps):
            self._claim(step.id, _path("steps", i, "id"), seen)
            self.index.setdefault(step.id, i)
            self.graph.add_node(step.id)
            if isinstance(step, ParallelStep) and step.configuration.step is not None:
                inline = step.configuration.step
                self._claim(inline.id, _path("steps", i, "configuration", "step", "id"), seen)
                self.inline_owner.setdefault(inline.id, step.id)

    def _claim(self, step_id: str, path: str, seen: dict[str, str]) -> None:
        if step_id in seen:
            self.add(path, f"duplicate step id {step_id!r} (already used at {seen[step_id]})", "duplicate_id")
        else:
            seen[step_id] = path

    # -- references -----------------------------------------------------------------

    def step_ref_target(self, target: str, owner: str, where: str, what: str) -> bool:
        """Check that ``target`` names a top-level step other than ``owner``; report if not."""
        if target == owner:
            self.add(where, f"{what}: step {owner!r} cannot depend on itself", "self_reference")
            return False
        if target in self.index:
            return True
        if target in self.inline_owner:
            self.add(
                where,
                f"{what}: {target!r} is the inline step of forEach step {self.inline_owner[target]!r}; "
                f"reference {self.inline_owner[target]!r} instead",
                "unknown_step",
            )
        else:
            self.add(where, f"{what}: unknown step {target!r}{_suggest(target, self.index)}", "unknown_step")
        return False

    def check_reference(self, ref: Reference, owner: str, where: str, inline: bool) -> None:
        if ref.kind == "input":
            if ref.target not in self.d.inputs:
                declared = ", ".join(sorted(self.d.inputs)) or "none"
                self.add(
                    where,
                    f"{ref}: the workflow declares no input {ref.target!r} (declared inputs: {declared})"
                    f"{_suggest(ref.target, self.d.inputs)}",
                    "unknown_input",
                )
            return
        if ref.kind == "item":
            if not inline:
                self.add(
                    where, f"{ref}: ${{item}} is only defined inside a forEach step's 'step'", "item_outside_foreach"
                )
            return
        if not self.step_ref_target(ref.target, owner, where, str(ref)):
            return
        self.graph.add_edge(ref.target, owner)
        if ref.output is not None:
            self.check_output(ref.target, ref.output, where, str(ref))

    def check_output(self, target: str, output: str, where: str, what: str) -> None:
        declared = self.d.steps[self.index[target]].declared_outputs()
        if output in declared:
            return
        if not declared:
            self.add(
                where,
                f"{what}: step {target!r} declares no outputs; declare {output!r} under its 'outputs' "
                f"or use ${{steps.{target}.output}}",
                "unknown_output",
            )
        else:
            self.add(
                where,
                f"{what}: step {target!r} does not declare output {output!r} "
                f"(declared: {', '.join(sorted(declared))}){_suggest(output, declared)}",
                "unknown_output",
            )

    def scan(self, value: Any, owner: str, record_as: str, base: tuple[str | int, ...], inline: bool) -> None:
        for rel_path, found in iter_references(value):
            where = _path(*base, *rel_path)
            if isinstance(found, ReferenceSyntaxError):
                self.add(where, str(found), "reference_syntax")
                continue
            self.references.setdefault(record_as, []).append(found)
            self.check_reference(found, owner, where, inline)

    def scan_step(self, step: WorkflowStep, owner: str, base: tuple[str | int, ...], inline: bool) -> None:
        self.scan(step.inputs, owner, step.id, (*base, "inputs"), inline)
        if isinstance(step, TaskStep) and step.configuration.prompt is not None:
            self.scan(step.configuration.prompt, owner, step.id, (*base, "configuration", "prompt"), inline)
        if isinstance(step, SubgraphStep):
            self.scan(step.configuration.inputs, owner, step.id, (*base, "configuration", "inputs"), inline)
        for j, dep in enumerate(step.configuration.depends_on):
            where = _path(*base, "configuration", "dependsOn", j)
            if self.step_ref_target(dep, owner, where, "dependsOn"):
                self.graph.add_edge(dep, owner)

    # -- step kinds -----------------------------------------------------------------

    def check_steps(self) -> None:
        for i, step in enumerate(self.d.steps):
            base: tuple[str | int, ...] = ("steps", i)
            self.scan_step(step, step.id, base, inline=False)
            if isinstance(step, DecisionStep):
                self.check_decision(step, base)
            elif isinstance(step, ParallelStep):
                self.check_parallel(step, base)

    def check_decision(self, step: Any, base: tuple[str | int, ...]) -> None:

        config = step.configuration
        where = _path(*base, "configuration", "condition")
        read: set[str] = set()
        try:
            chains = condition_chains(config.condition)
        except TemplateSyntaxError as exc:
            self.add(where, f"condition does not parse: {exc.message}", "condition_syntax")
            chains = []
        for chain in chains:
            root = chain[0]
            if root == "inputs":
                if len(chain) > 1 and chain[1] not in self.d.inputs:
                    declared = ", ".join(sorted(self.d.inputs)) or "none"
                    self.add(
                        where,
                        f"condition reads inputs.{chain[1]}, but the workflow declares no such input (declared: {declared})",
                        "unknown_input",
                    )
            elif root == "steps":
                if len(chain) < 2:
                    continue
                target = chain[1]
                if self.step_ref_target(target, step.id, where, f"condition reads steps.{target}"):
                    self.graph.add_edge(target, step.id)
                    read.add(target)
                    if len(chain) > 3 and chain[2] == "outputs":
                        self.check_output(target, chain[3], where, f"condition reads steps.{target}.outputs.{chain[3]}")
            else:
                self.add(
                    where,
                    f"condition uses unknown name {root!r}; a condition sees only 'inputs' and 'steps'",
                    "condition_name",
                )
        self.condition_steps[step.id] = frozenset(read)

        then, other = set(config.then), set(config.else_)
        for branch, ids, key in (("then", config.then, "then"), ("else", config.else_, "else")):
            for j, target in enumerate(ids):
                at = _path(*base, "configuration", key, j)
                if not self.step_ref_target(target, step.id, at, f"{branch} branch"):
                    continue
                if target in then and target in other and branch == "else":
                    self.add(at, f"step {target!r} is in both 'then' and 'else'", "branch_conflict")
                    continue
                previous = self.branch_of.get(target)
                if previous and previous[0] != step.id:
                    self.add(
                        at, f"step {target!r} is already on a branch of decision {previous[0]!r}", "branch_conflict"
                    )
                    continue
                self.branch_of[target] = (step.id, branch)
                self.graph.add_edge(step.id, target)

    def check_parallel(self, step: Any, base: tuple[str | int, ...]) -> None:
        config = step.configuration
        for j, child in enumerate(config.steps):
            at = _path(*base, "configuration", "steps", j)
            if not self.step_ref_target(child, step.id, at, "parallel child"):
                continue
            if child in self.parallel_parent and self.parallel_parent[child] != step.id:
                self.add(
                    at,
                    f"step {child!r} is already a child of parallel step {self.parallel_parent[child]!r}",
                    "parallel_conflict",
                )
                continue
            self.parallel_parent[child] = step.id
            self.graph.add_edge(child, step.id)
        if config.for_each is not None:
            at = _path(*base, "configuration", "forEach")
            if isinstance(config.for_each, str):
                try:
                    refs = references_in_string(config.for_each)
                except ReferenceSyntaxError as exc:
                    self.add(at, str(exc), "reference_syntax")
                    refs = []
                else:
                    if len(refs) != 1 or refs[0].text != config.for_each.strip():
                        self.add(
                            at,
                            "forEach must be exactly one reference to a list, e.g. ${steps.search.outputs.items}, "
                            "or a literal list",
                            "foreach_shape",
                        )
                for ref in refs:
                    self.references.setdefault(step.id, []).append(ref)
                    self.check_reference(ref, step.id, at, inline=False)
            else:
                self.scan(
                    config.for_each,
                    step.id,
                    step.id,
                    ("steps", self.index[step.id], "configuration", "forEach"),
                    inline=False,
                )
        if config.step is not None:
            self.scan_step(config.step, step.id, (*base, "configuration", "step"), inline=True)

    # -- global rules ----------------------------------------------------------------

    def check_cycles(self) -> None:
        for component in nx.strongly_connected_components(self.graph):
            if len(component) == 1:
                (node,) = component
                if not self.graph.has_edge(node, node):
                    continue
            sub = self.graph.subgraph(component)
            start = min(component, key=lambda s: self.index.get(s, 0))
            cycle = nx.find_cycle(sub, source=start)
            ids = [u for u, _ in cycle] + [cycle[0][0]]
            self.add(
                _path("steps", self.index.get(start, 0)),
                "circular reference: " + " → ".join(ids),
                "cycle",
            )

    def check_error_handling(self) -> None:
        if self.d.error_handling is None and self.d.is_non_trivial():
            reason = "it has more than one step" if len(self.d.steps) > 1 else "it has an agent step"
            self.add(
                "errorHandling",
                f"an error handling strategy is required because {reason}: add errorHandling with retryAttempts "
                "and backoffStrategy (and optionally fallbackAction, circuitBreaker)",
                "error_handling_required",
            )

    def run(self) -> WorkflowGraph:
        self.collect_ids()
        self.check_steps()
        self.check_cycles()
        self.check_error_handling()
        order: list[str] = []
        if not any(p.code == "cycle" for p in self.problems):
            order = list(nx.lexicographical_topological_sort(self.graph, key=lambda s: f"{self.index.get(s, 0):08d}"))
        dependencies = {node: frozenset(self.graph.predecessors(node)) for node in self.graph.nodes}
        return WorkflowGraph(
            order=order,
            dependencies=dependencies,
            branch_of=self.branch_of,
            parallel_parent=self.parallel_parent,
            references=self.references,
            condition_steps=self.condition_steps,
            graph=self.graph,
        )


def analyze_definition(
    definition: WorkflowDefinition, context: ValidationContext | None = None
) -> tuple[WorkflowGraph, list[Problem]]:
    analyzer = _Analyzer(definition, context)
    graph = analyzer.run()
    return graph, analyzer.problems
