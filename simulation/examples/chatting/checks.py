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
def repeats_itself(c: CheckContext) -> Verdict:
    """Says word for word what it already said earlier."""
    text = " ".join(c.action.data.get("text", "").lower().split())
    if not re.search(r"\w", text):
        return None
    if any(" ".join(a.data.get("text", "").lower().split()) == text for a in c.history("say")):
        return Failed("repeated its own earlier message word for word")
    return PASS


CHECKS = [wrote_for_others, repeats_itself]
