"""How an agent looks in each lifecycle state: colour, glyph and animation, and the inline SVG built from them.

Seed 000's ``agent_update`` message carries an SVG and an ``animation_type``;
both come from :data:`STATE_LOOKS`, the one place that says how a state looks,
so a client that only reads ``animation_type`` and one that renders the SVG
agree. The SVG is self-contained (no scripts, no external references, text
escaped) so a client can inline it safely; the animation is the client's to
play, named by ``animation_type`` and repeated on the root as
``data-animation``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from agentparty.models import AgentLifecycleState
from agentparty.models.api import AnimationType

SVG_SIZE = 64


@dataclass(frozen=True)
class StateLook:
    fill: str
    """Avatar colour."""
    glyph: str
    """SVG path data of the state badge, drawn in a 20×20 box centred on 0,0."""
    animation: AnimationType


STATE_LOOKS: dict[str, StateLook] = {
    AgentLifecycleState.INITIALIZED: StateLook("#94a3b8", "M-4,0 a4,4 0 1,0 8,0 a4,4 0 1,0 -8,0", "idle"),
    AgentLifecycleState.RUNNING: StateLook("#2563eb", "M-3,-5 L5,0 L-3,5 Z", "pulse"),
    AgentLifecycleState.PAUSED: StateLook("#d97706", "M-4,-5 h3 v10 h-3 Z M1,-5 h3 v10 h-3 Z", "fade"),
    AgentLifecycleState.COMPLETED: StateLook("#16a34a", "M-5,0 L-1.5,4 L5,-4 L3.5,-5.5 L-1.5,1 L-3.5,-1.5 Z", "glow"),
    AgentLifecycleState.FAILED: StateLook(
        "#dc2626",
        "M-5,-3.5 L-3.5,-5 L0,-1.5 L3.5,-5 L5,-3.5 L1.5,0 L5,3.5 L3.5,5 L0,1.5 L-3.5,5 L-5,3.5 L-1.5,0 Z",
        "shake",
    ),
    AgentLifecycleState.TERMINATED: StateLook("#475569", "M-4,-4 h8 v8 h-8 Z", "none"),
}
"""Lifecycle state → look (and animation): the only mapping of states to visuals."""

UNKNOWN_LOOK = StateLook("#6b7280", "M-1.5,-5 h3 v6 h-3 Z M-1.5,2.5 h3 v3 h-3 Z", "none")
"""A state this code does not know (a newer producer): drawn neutral, not animated."""


def look_of(state: str) -> StateLook:
    return STATE_LOOKS.get(state, UNKNOWN_LOOK)


def animation_for(state: str) -> AnimationType:
    return look_of(state).animation


def initials(name: str) -> str:
    """Up to two letters: the first of the first two words (``data_analysis`` → ``DA``), else the first two."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:2].upper()
    return (words[0][0] + words[1][0]).upper()


def agent_svg(name: str, state: str) -> str:
    """A 64×64 avatar: a disc in the state's colour with the agent's initials and a state badge."""
    look = look_of(state)
    label = f"{name}: {state}"
    centre, badge = SVG_SIZE // 2, SVG_SIZE - 13
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_SIZE}" height="{SVG_SIZE}" viewBox="0 0 {SVG_SIZE} {SVG_SIZE}"'
        f' role="img" aria-label={quoteattr(label)} data-state={quoteattr(state)} data-animation="{look.animation}">'
        f"<title>{escape(label)}</title>"
        f'<circle cx="{centre}" cy="{centre}" r="{centre - 4}" fill="{look.fill}"/>'
        f'<text x="{centre}" y="{centre + 6}" text-anchor="middle" font-family="sans-serif" font-size="18"'
        f' font-weight="bold" fill="#ffffff">{escape(initials(name))}</text>'
        f'<g transform="translate({badge} {badge})">'
        f'<circle r="10" fill="#ffffff" stroke="{look.fill}" stroke-width="2"/>'
        f'<path d="{look.glyph}" fill="{look.fill}"/>'
        "</g></svg>"
    )
