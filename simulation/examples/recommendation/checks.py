"""Recommendation's own rules, grounded in what the user wrote and in its profile."""

from __future__ import annotations

import re

from simulation.core.checks import PASS, CheckContext, Failed, Verdict, check

POSITIVE = {"love", "loved", "great", "enjoyed", "amazing", "wonderful", "liked", "fun", "beautiful", "fantastic",
            "excellent", "brilliant", "delightful", "masterpiece", "favorite", "favourite", "best"}
NEGATIVE = {"boring", "hated", "hate", "bad", "awful", "disappointing", "disappointed", "terrible", "dull",
            "worst", "waste", "poor", "annoying", "slow", "predictable", "meh"}


def sentiment(text: str) -> int:
    """+1 for a feeling worded only positively, -1 only negatively, 0 otherwise (a crude lexicon)."""
    words = set(re.findall(r"[a-z']+", text.lower()))
    neg = bool(words & NEGATIVE) or "didn't like" in text.lower() or "did not like" in text.lower()
    pos = bool(words & POSITIVE) and not neg
    return 1 if pos else -1 if neg else 0


@check("rate")
def rating_contradicts_feeling(c: CheckContext) -> Verdict:
    """Rates a film against the feeling the user wrote about that same film."""
    stars = c.action.data.get("stars")
    felt = [a for a in c.history("feel") if a.data.get("film") == c.action.data.get("film")]
    if stars is None or not felt:
        return None
    mood = sentiment(felt[-1].data.get("text", ""))
    if mood > 0 and stars <= 2.0:
        return Failed(f"rated {stars} stars after writing a positive feeling", "4.0")
    if mood < 0 and stars >= 4.0:
        return Failed(f"rated {stars} stars after writing a negative feeling", "2.0")
    return PASS if mood else None


@check("watch")
def picked_disliked_genre(c: CheckContext) -> Verdict:
    """Picks a film of the user's disliked genre when the list offered one without it."""
    disliked = c.profile.get("disliked_genre")
    shown, films = c.action.data.get("shown", []), c.env.world_view.films
    if not disliked or not shown:
        return None
    clean = [i for i, f in enumerate(shown) if disliked not in films[f]["genres"]]
    if disliked in films[c.action.data["film"]]["genres"] and clean:
        favs = set(c.profile.get("favorite_genres", []))
        best = next((i for i in clean if favs & set(films[shown[i]]["genres"])), clean[0])
        return Failed(f"picked a {disliked} film, the user's disliked genre", str(best + 1))
    return PASS


@check("watch")
def picked_outside_taste(c: CheckContext) -> Verdict:
    """Picks a film sharing no genre with the user's favourites when the list offered one that does."""
    favs = set(c.profile.get("favorite_genres", []))
    shown, films = c.action.data.get("shown", []), c.env.world_view.films
    if not favs or not shown:
        return None
    matching = [i for i, f in enumerate(shown) if favs & set(films[f]["genres"])]
    if matching and not favs & set(films[c.action.data["film"]]["genres"]):
        return Failed("picked a film outside the user's favourite genres", str(matching[0] + 1))
    return PASS


# Shipped: the rules that find errors in the bundled model's runs (bench/check_shares.py). A rating
# after a feeling is too rare there to measure, so rating_contradicts_feeling is offered, not shipped:
# add it to a scenario's checks for a model that rates more.
CHECKS = [picked_disliked_genre, picked_outside_taste]
OPTIONAL_CHECKS = [rating_contradicts_feeling]
