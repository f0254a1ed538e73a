"""How an agent looks in each lifecycle state: colour, glyph and animation, and the inline SVG built from them.

Seed 000's ``agent_update`` message carries an SVG and an ``animation_type``;
both come from :data:`STATE_LOOKS`, the one place that says how a state looks,
so a client that only reads ``animation_type`` and one that renders the SVG
agree. What an agent does within its state (its *activity*: thinking, using a
tool, waiting for approval; ``models/live_stream.py``) is not a state, so it
changes the look on top of the state's: the badge and the animation come from
:data:`ACTIVITY_LOOKS`, the colour stays the state's. The SVG is self-contained (no scripts, no external references, text
escaped) so a client can inline it safely; the animation is the client's to
play, named by ``animation_type`` and repeated on the root as
``data-animation``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from xml.sax.saxutils import escape, quoteattr

from agentparty.models import AgentLifecycleState
from agentparty.models.api import AnimationType
from agentparty.models.live_stream import AgentActivity

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


ACTIVITY_LOOKS: dict[str, tuple[str, AnimationType]] = {
    "thinking": ("M-6,-1.5 h3 v3 h-3 Z M-1.5,-1.5 h3 v3 h-3 Z M3,-1.5 h3 v3 h-3 Z", "pulse"),
    "using a tool": ("M-5,3.5 L1,-2.5 A3.5,3.5 0 1,1 2.5,-1 L-3.5,5 Z", "spin"),
    "waiting for approval": ("M-4,-5 h8 L1,0 L4,5 h-8 L-1,0 Z", "fade"),
}
"""Activity → (badge glyph, animation), drawn over the state's colour."""


def look_of(state: str, activity: AgentActivity | None = None) -> StateLook:
    look = STATE_LOOKS.get(state, UNKNOWN_LOOK)
    if activity is not None and activity in ACTIVITY_LOOKS:
        glyph, animation = ACTIVITY_LOOKS[activity]
        return replace(look, glyph=glyph, animation=animation)
    return look


def animation_for(state: str, activity: AgentActivity | None = None) -> AnimationType:
    return look_of(state, activity).animation


def initials(name: str) -> str:
    """Up to two letters: the first of the first two words (``data_analysis`` → ``DA``), else the first two."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:2].upper()
    return (words[0][0] + words[1][0]).upper()


@lru_cache(maxsize=4096)
def agent_svg(name: str, state: str, activity: AgentActivity | None = None) -> str:
    """A 64×64 avatar: a disc in the state's colour with the agent's initials and a badge of its state (or of its
    activity). Cached: a streaming agent's deltas all look the same."""
    look = look_of(state, activity)
    label = f"{name}: {state}" + (f", {activity}" if activity else "")
    doing = f" data-activity={quoteattr(activity)}" if activity else ""
    centre, badge = SVG_SIZE // 2, SVG_SIZE - 13
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_SIZE}" height="{SVG_SIZE}" viewBox="0 0 {SVG_SIZE} {SVG_SIZE}"'
        f' role="img" aria-label={quoteattr(label)} data-state={quoteattr(state)} data-animation="{look.animation}"{doing}>'
        f"<title>{escape(label)}</title>"
        f'<circle cx="{centre}" cy="{centre}" r="{centre - 4}" fill="{look.fill}"/>'
        f'<text x="{centre}" y="{centre + 6}" text-anchor="middle" font-family="sans-serif" font-size="18"'
        f' font-weight="bold" fill="#ffffff">{escape(initials(name))}</text>'
        f'<g transform="translate({badge} {badge})">'
        f'<circle r="10" fill="#ffffff" stroke="{look.fill}" stroke-width="2"/>'
        f'<path d="{look.glyph}" fill="{look.fill}"/>'
        "</g></svg>"
    )
