"""Load workflow definitions (and other documents) from YAML or JSON files (the file side of the models).

Errors carry the file name and, where the document has one, the line of the
offending field: a person fixing a definition should never have to search for
``steps[3].configuration.then[0]`` by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from agentparty.models import DEFAULT_MODEL_REGISTRY, ModelRegistry, ValidationContext, WorkflowDefinition
from agentparty.models.document_kinds import detect_kind, model_for
from agentparty.models.errors import FieldError, field_errors

M = TypeVar("M", bound=BaseModel)

WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")

PathKey = tuple[str | int, ...]


def _norm(key: str | int) -> str | int:
    # camelCase and snake_case spellings of one field map to the same key.
    return key.replace("_", "").lower() if isinstance(key, str) else key


class DocumentError(Exception):
    """A file that could not be read or validated; ``errors`` holds one entry per problem."""

    def __init__(self, path: Path, errors: Sequence[FieldError]) -> None:
        self.path = path
        self.errors = list(errors)
        super().__init__("\n".join(e.render(str(path)) for e in self.errors))


@dataclass
class Document:
    """A parsed file: its data and the line of every key and list item in it."""

    path: Path
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """Line of the deepest part of ``loc`` present in the file (a missing field points at its parent)."""
        key = tuple(_norm(p) for p in loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)


def _index_lines(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], problems: list[FieldError]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                where = ".".join(str(p) for p in (*path, key))
                problems.append(
                    FieldError(where, f"duplicate key {key!r} (first on line {seen[key]})", "duplicate_key", line)
                )
                continue
            seen[key] = line
            child = (*path, _norm(key))
            lines[child] = line
            _index_lines(value_node, child, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, problems)


def _parse_error(path: Path, exc: Exception) -> DocumentError:
    line = None
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    message = str(getattr(exc, "problem", None) or exc)
    if isinstance(exc, json.JSONDecodeError):
        line, message = exc.lineno, exc.msg
    return DocumentError(path, [FieldError("", f"cannot parse: {message}", "parse_error", line)])


def read_document(path: Path) -> Document:
    """Parse a YAML or JSON file, keeping a line index; duplicate keys are errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(path, [FieldError("", f"cannot read: {exc}", "read_error")]) from None
    return parse_document(text, path)


def parse_document(text: str, path: Path) -> Document:
    """Parse a file's text as :func:`read_document` does; ``path`` names it in errors and picks JSON or YAML.

    Separate from reading so that a copy of a definition kept elsewhere (the one stored with its
    Prefect deployment) is parsed exactly as the file it was deployed from."""
    is_json = path.suffix.lower() == ".json"
    lines: dict[PathKey, int] = {}
    problems: list[FieldError] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        if not is_json:
            raise _parse_error(path, exc) from None
        node = None  # JSON that YAML 1.1 cannot read: no line numbers, json decides validity
    if node is not None:
        _index_lines(node, (), lines, problems)
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise _parse_error(path, exc) from None
    if problems:
        raise DocumentError(path, problems)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise DocumentError(
            path, [FieldError("", f"expected a mapping at the top level, got {kind}", "not_a_mapping", 1)]
        )
    return Document(path, data, lines)


def validate_document(document: Document, model: type[M], context: ValidationContext | None = None) -> M:
    try:
        return model.model_validate(document.data, context=context)
    except ValidationError as exc:
        errors = []
        for error in field_errors(exc):
            loc = _split_path(error.path)
            errors.append(FieldError(error.path, error.message, error.code, document.line_of(loc)))
        raise DocumentError(document.path, errors) from None


def _split_path(path: str) -> PathKey:
    parts: list[str | int] = []
    for chunk in path.replace("[", ".[").split("."):
        if not chunk:
            continue
        if chunk.startswith("[") and chunk.endswith("]") and chunk[1:-1].isdigit():
            parts.append(int(chunk[1:-1]))
        else:
            parts.append(chunk)
    return tuple(parts)


class WorkflowCatalog:
    """Resolves subgraph targets: file paths next to a definition, or ids of known definitions."""

    def __init__(self, known_ids: Iterable[str] = ()) -> None:
        self.known_ids = set(known_ids)
        self._scanned: dict[Path, set[str]] = {}

    def ids_in(self, directory: Path) -> set[str]:
        if directory not in self._scanned:
            ids: set[str] = set()
            for candidate in sorted(directory.iterdir()) if directory.is_dir() else []:
                if candidate.suffix.lower() in WORKFLOW_SUFFIXES and candidate.is_file():
                    try:
                        data = read_document(candidate).data
                    except DocumentError:
                        continue
                    if isinstance(data.get("id"), str) and "steps" in data:
                        ids.add(data["id"])
            self._scanned[directory] = ids
        return self._scanned[directory]

    def resolve_path(self, target: str, base_dir: Path) -> Path | None:
        if target.lower().endswith(WORKFLOW_SUFFIXES) or "/" in target:
            candidate = (base_dir / target).resolve()
            return candidate if candidate.is_file() else None
        return None

    def exists_from(self, base_dir: Path) -> Callable[[str], bool]:
        def exists(target: str) -> bool:
            if target.lower().endswith(WORKFLOW_SUFFIXES) or "/" in target:
                return self.resolve_path(target, base_dir) is not None
            return target in self.known_ids or target in self.ids_in(base_dir)

        return exists

    def find(self, target: str, base_dir: Path) -> Path | None:
        """The file that defines ``target`` (a path or an id), for running a subgraph."""
        path = self.resolve_path(target, base_dir)
        if path is not None:
            return path
        for candidate in sorted(base_dir.iterdir()):
            if candidate.suffix.lower() in WORKFLOW_SUFFIXES:
                try:
                    if read_document(candidate).data.get("id") == target:
                        return candidate
                except DocumentError:
                    continue
        return None


@dataclass
class WorkflowLoader:
    """Loads definitions with the full validation context (model registry, subgraph targets)."""

    model_registry: ModelRegistry = field(default_factory=lambda: DEFAULT_MODEL_REGISTRY)
    catalog: WorkflowCatalog = field(default_factory=WorkflowCatalog)

    def context_for(self, path: Path) -> ValidationContext:
        return ValidationContext(
            model_registry=self.model_registry,
            workflow_exists=self.catalog.exists_from(path.resolve().parent),
        )

    def load(self, path: Path | str) -> WorkflowDefinition:
        path = Path(path)
        return validate_document(read_document(path), WorkflowDefinition, self.context_for(path))


def load_workflow(path: Path | str, model_registry: ModelRegistry | None = None) -> WorkflowDefinition:
    """Read and validate one definition; raises :class:`DocumentError` listing every problem."""
    loader = WorkflowLoader(model_registry or DEFAULT_MODEL_REGISTRY)
    return loader.load(path)


@dataclass
class FileReport:
    path: Path
    kind: str
    errors: list[FieldError]

    @cached_property
    def valid(self) -> bool:
        return not self.errors


def validate_paths(
    paths: Sequence[Path], kind: str = "auto", model_registry: ModelRegistry | None = None
) -> list[FileReport]:
    """Validate each file; workflow ids must also be unique across the files given together."""
    documents: list[tuple[Path, Document | None, str, list[FieldError]]] = []
    for path in paths:
        try:
            read = read_document(path)
        except DocumentError as exc:
            documents.append((path, None, kind if kind != "auto" else "unknown", exc.errors))
            continue
        documents.append((path, read, detect_kind(read.data) if kind == "auto" else kind, []))

    ids = [d.data.get("id") for _, d, k, _ in documents if d is not None and k == "workflow"]
    loader = WorkflowLoader(
        model_registry or DEFAULT_MODEL_REGISTRY, WorkflowCatalog(i for i in ids if isinstance(i, str))
    )
    first_use: dict[str, Path] = {}
    reports: list[FileReport] = []
    for path, document, doc_kind, read_errors in documents:
        errors = read_errors
        if document is not None:
            context = (
                loader.context_for(path)
                if doc_kind == "workflow"
                else ValidationContext(model_registry=loader.model_registry)
            )
            try:
                validate_document(document, model_for(doc_kind), context)
            except DocumentError as exc:
                errors = exc.errors
            workflow_id = document.data.get("id")
            if doc_kind == "workflow" and isinstance(workflow_id, str):
                if workflow_id in first_use:
                    errors = [
                        *errors,
                        FieldError(
                            "id",
                            f"workflow id {workflow_id!r} is also used by {first_use[workflow_id]}; ids must be unique",
                            "duplicate_workflow_id",
                            document.line_of(("id",)),
                        ),
                    ]
                else:
                    first_use[workflow_id] = path
        reports.append(FileReport(path, doc_kind, errors))
    return reports
