"""An MCP server with one tool, ``search_docs``: the research corpus search, offered over MCP.

The same answers as the Python tool ``handlers:search_docs`` (both call
``docsearch.search``), and the same text: the documents as one JSON list, which
is what an agent reads from either.

Over stdio (how an agent step starts it, from the definition's folder)::

    python examples/mcp_docs_server.py

    mcpServers: [{name: docs, command: [python, mcp_docs_server.py]}]

Over streamable HTTP, on loopback only, at ``http://127.0.0.1:PORT/mcp``::

    python examples/mcp_docs_server.py --http 8765

    mcpServers: [{name: docs, url: "http://127.0.0.1:8765/mcp"}]
"""

from __future__ import annotations

import argparse
import json
from typing import Annotated

from docsearch import search  # next to this file: Python puts a script's folder on the path
from mcp.server import MCPServer
from pydantic import Field

server = MCPServer("docs", instructions="Search the research corpus of the example workflows.", log_level="WARNING")


@server.tool(structured_output=False)
def search_docs(
    query: Annotated[str, Field(description="What to look for: a few keywords work best.")],
    limit: Annotated[int, Field(description="The most documents to return (1 to 10).")] = 3,
) -> str:
    """Search the research corpus (``examples/corpus``) for documents about ``query``."""
    documents = search(query, max(1, min(limit, 10)))
    # One text block holding the JSON list (a returned list would be one block per document).
    return json.dumps(documents, ensure_ascii=False, separators=(",", ":"))


def main() -> None:
    parser = argparse.ArgumentParser(description="The example docs MCP server (stdio unless --http).")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT instead")
    port = parser.parse_args().http
    if port is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
