"""A small document search over ``examples/corpus``: the research team's tool.

Offered two ways, with the same answers: as a Python tool (``handlers:search_docs``)
and from an MCP server (``examples/mcp_docs_server.py``). Scoring is plain term
overlap (each query word that appears in a document counts, title words double),
deterministic and dependency-free, which is all an example needs.
"""

from __future__ import annotations

import re
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


def search(query: str, limit: int = 3) -> list[dict[str, str]]:
    """The documents of the corpus that best match ``query``, best first: title, source file and an excerpt."""
    wanted = _words(query)
    scored = []
    for path in sorted(CORPUS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        title, _, body = text.partition("\n")
        score = len(wanted & _words(body)) + 2 * len(wanted & _words(title))
        if score:
            excerpt = " ".join(body.split())[:300]
            scored.append(
                (
                    score,
                    path.name,
                    {"title": title.lstrip("# ").strip(), "source": f"corpus/{path.name}", "excerpt": excerpt},
                )
            )
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [document for _, _, document in scored[: max(1, limit)]]
