"""The film catalogue: a seeded synthetic one (unique titles, genres, years) or a MovieLens movies.csv."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from simulation.population.synth import UniqueSpace, rng_for

GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
ADJECTIVES = ["Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Midnight", "Frozen", "Electric", "Lost",
              "Wild", "Distant", "Burning", "Secret", "Fallen", "Endless", "Quiet", "Savage", "Velvet", "Iron",
              "Paper", "Glass", "Hollow", "Bright", "Final", "Little", "Northern", "Shadow", "Summer", "Winter",
              "Restless", "Scarlet", "Empty", "Sacred", "Stolen", "Wandering", "Bitter", "Gentle", "Neon", "Ancient"]
NOUNS = ["River", "Empire", "Garden", "Station", "Kingdom", "Letter", "Harbor", "Machine", "Orchard", "Frontier",
         "Mirror", "Circus", "Voyage", "Island", "Symphony", "Horizon", "Detective", "Lighthouse", "Carnival",
         "Promise", "Engine", "Forest", "Highway", "Witness", "Ballroom", "Planet", "Citadel", "Desert", "Signal",
         "Prophet", "Canyon", "Archive", "Harvest", "Tunnel", "Comet", "Labyrinth", "Monsoon", "Parade", "Fortress",
         "Nocturne"]
FORMS = ["The {a} {n}", "{a} {n}", "A {a} {n}", "The {n} of {a} Days", "{n}: {a}", "Return to the {a} {n}",
         "The {a} {n} Affair", "Beyond the {a} {n}"]
YEAR = re.compile(r"\s*\((\d{4})\)\s*$")


def generate_catalogue(seed: int, size: int) -> list[dict[str, Any]]:
    """``size`` films with unique titles (12,800 before a sequel number is added), 1-3 genres and a year."""
    space = UniqueSpace([len(ADJECTIVES), len(NOUNS), len(FORMS)], salt=seed)
    out = []
    for i in range(size):
        a, n, f = space.combo(i % space.size)
        rng = rng_for("film", seed, i)
        title = FORMS[f].format(a=ADJECTIVES[a], n=NOUNS[n]) + (f" {i // space.size + 1}" if i >= space.size else "")
        out.append({"id": f"m{i + 1}", "title": title, "year": rng.randint(1950, 2025),
                    "genres": sorted(rng.sample(GENRES, k=rng.choice([1, 1, 2, 2, 3])))})
    return out


def import_movielens(path: Path) -> list[dict[str, Any]]:
    """A MovieLens-style ``movies.csv`` (movieId,title,genres; ``Title (1995)``; ``A|B`` genres)."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"movieId", "title", "genres"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            title = (row["title"] or "").strip()
            if not title:
                raise ValueError(f"{path}: line {line}: empty title")
            m = YEAR.search(title)
            genres = [g for g in (row["genres"] or "").split("|") if g and g != "(no genres listed)"]
            out.append({"id": f"m{row['movieId']}", "title": YEAR.sub("", title), "year": int(m.group(1)) if m else None,
                        "genres": genres})
    if not out:
        raise ValueError(f"{path}: no films")
    return out


def film_text(film: dict[str, Any]) -> str:
    year = f" ({film['year']})" if film.get("year") else ""
    return f"{film['title']}{year}: {', '.join(film['genres']) or 'unclassified'}"
