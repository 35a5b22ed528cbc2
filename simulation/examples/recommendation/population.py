"""Film-site users: a unique person (simulation.population.synth) plus taste.

Fields: name, age, gender, traits, favorite_genres (2-3 of the catalogue's genres), disliked_genre,
watch_style (binge / selective / casual / critic), bio.
"""

from __future__ import annotations

from typing import Any

from simulation.population.synth import person, rng_for

from .catalogue import GENRES

STYLES = ["binge", "selective", "casual", "critic"]


def generate_user(seed: int, index: int) -> dict[str, Any]:
    p, (style,) = person("film-user", seed, index, [len(STYLES)])
    rng = rng_for("film-taste", seed, index)
    favs = sorted(rng.sample(GENRES, k=rng.choice([2, 3])))
    disliked = rng.choice([g for g in GENRES if g not in favs])
    return {**p, "favorite_genres": favs, "disliked_genre": disliked, "watch_style": STYLES[style],
            "bio": f"A {STYLES[style]} viewer who loves {' and '.join(favs)} but avoids {disliked}."}
