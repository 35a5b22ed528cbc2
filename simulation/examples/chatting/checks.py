"""Chatting's own rules over what each member said."""

from __future__ import annotations

import re

from simulation.core.checks import PASS, CheckContext, Failed, Verdict, check


@check("say")
def wrote_for_others(c: CheckContext) -> Verdict:
    """Wrote another member's lines, or under a name label, besides its own message."""
    if c.action.data.get("trimmed"):
        return Failed("the answer held words under another speaker's label; only its own were kept",
                      c.action.data.get("text"))
    return PASS


@check("say")
def empty_message(c: CheckContext) -> Verdict:
    """Said nothing of its own: an empty or punctuation-only message."""
    if not re.search(r"\w", c.action.data.get("text", "")):
        return Failed("said nothing of its own")
    return PASS


CHECKS = [wrote_for_others, empty_message]
