"""The film site: catalogue, embedding recommender, friendships, rating data and metrics."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simulation.config.errors import ConfigError, ConfigProblem
from simulation.core import Action, Environment, Message, Phase
from simulation.embedding.index import VectorIndex
from simulation.population import neighbours

from .catalogue import GENRES, film_text, generate_catalogue, import_movielens

STARS = [f"{x / 2:.1f}" for x in range(1, 11)]  # 0.5 .. 5.0


class RecommendationParams(BaseModel):
    """The ``scenario:`` section of ``simulation_config.yml``."""

    model_config = ConfigDict(extra="forbid")
    catalogue_size: int = Field(default=10_000, ge=10, le=2_000_000, description="synthetic films, if no movies_csv")
    movies_csv: str | None = Field(default=None, description="a MovieLens-style movies.csv (relative: to configs/)")
    recommend_k: int = Field(default=5, ge=1, le=20, description="films the recommender shows")
    friends_degree: int = Field(default=4, ge=0, le=100, description="friends per user in the small-world graph")
    rewire: float = Field(default=0.1, ge=0, le=1, description="small-world rewiring probability")
    text_max_tokens: int = Field(default=32, ge=4, le=512, description="length of feelings, chats and posts")
    posts_remembered: int = Field(default=2, ge=0, le=50, description="friends' posts a user takes in per round")


class FilmSite(Environment):
    """What users see (the world) is built here once; what they did is tallied after each phase."""

    def __init__(self, params: dict[str, Any], seed: int):
        super().__init__(params, seed)
        self.p = RecommendationParams.model_validate(params)
        self.world_view: SiteView | None = None
        self.ratings: list[list] = []  # [user, film, stars, round]: the rating data
        self.round_counts: Counter[str] = Counter()
        self.round_genres: Counter[str] = Counter()
        self.round_stars: list[float] = []
        self.watched: dict[str, set[str]] = {}

    async def setup(self, sim: Any) -> None:
        if self.p.movies_csv:
            path = Path(self.p.movies_csv)
            path = path if path.is_absolute() else sim.spec.folder / "configs" / path
            try:
                films = import_movielens(path)
            except (OSError, ValueError) as e:
                raise ConfigError([ConfigProblem(str(path), "scenario.movies_csv", str(e))]) from None
        else:
            films = generate_catalogue(self.seed, self.p.catalogue_size)
        users = sim.profiles("user")
        vectors = await sim.embeddings.embed([film_text(f) for f in films])
        friends = neighbours(sim, "user", self.p.friends_degree, self.p.rewire)
        self.world_view = SiteView(films, vectors, friends, {u: p["name"] for u, p in users}, self.p)

    def world(self) -> SiteView | None:
        return self.world_view

    def phases(self, round_: int) -> list[Phase]:
        return [Phase("act", "user", "act"), Phase("reply", "user", "reply", "inbox"),
                Phase("hear", "user", "hear", "inbox")]

    def observe(self, phase: Phase, round_: int, actions: list[Action], messages: list[Message]) -> None:
        if phase.name == "act":
            self.round_counts.clear()
            self.round_genres.clear()
            self.round_stars = []
        assert self.world_view is not None
        films = self.world_view.films
        for a in actions:
            user, action, valid, data = a.agent_id, a.action, a.valid, a.data
            seen = self.watched.setdefault(user, set())
            ok = valid
            if action == "watch":
                ok = ok and data["film"] in films and data["film"] not in seen
                seen.add(data["film"])
                self.round_genres.update(films[data["film"]]["genres"] if data["film"] in films else [])
            elif action == "rate":
                ok = ok and data["film"] in seen
                if ok:
                    self.ratings.append([user, data["film"], data["stars"], round_])
                    self.round_stars.append(data["stars"])
            elif action == "chat":
                ok = ok and data["to"] in self.world_view.friends.get(user, [])
            self.round_counts[action] += 1
            self.round_counts["invalid_actions"] += not ok

    def metrics(self, round_: int) -> dict[str, float]:
        c = self.round_counts
        out = {"watches": float(c["watch"]), "ratings": float(c["rate"]), "feelings": float(c["feel"]),
               "chats": float(c["chat"]), "chat_replies": float(c["chat_reply"]), "posts": float(c["post"]),
               "invalid_actions": float(c["invalid_actions"])}
        out["mean_rating"] = round(sum(self.round_stars) / len(self.round_stars), 4) if self.round_stars else 0.0
        hist = Counter(self.round_stars)
        for s in STARS:
            out[f"rating_{s}"] = float(hist[float(s)])
        total = sum(self.round_genres.values())
        out["genres_watched"] = float(len(self.round_genres))
        out["genre_entropy"] = round(-sum(n / total * math.log2(n / total) for n in self.round_genres.values()), 4) \
            if total else 0.0  # Shannon diversity of this round's watches
        return out

    def summary(self) -> dict[str, Any]:
        stars = [r[2] for r in self.ratings]
        return {"films": len(self.world_view.films) if self.world_view else 0, "ratings": len(stars),
                "mean_rating": round(sum(stars) / len(stars), 3) if stars else 0.0}

    def get_state(self) -> dict[str, Any]:
        return {"ratings": self.ratings, "watched": {u: sorted(s) for u, s in self.watched.items()}}

    def set_state(self, s: dict[str, Any]) -> None:
        self.ratings = [list(r) for r in s["ratings"]]
        self.watched = {u: set(v) for u, v in s["watched"].items()}


class SiteView:
    """Read-only for users: films, the recommender (embedding search) and who is friends with whom."""

    def __init__(self, films: list[dict[str, Any]], vectors: np.ndarray, friends: dict[str, list[str]],
                 names: dict[str, str], params: RecommendationParams):
        self.films = {f["id"]: f for f in films}
        self.index = VectorIndex([f["id"] for f in films], vectors)
        self.friends = friends
        self.names = names
        self.params = params
        self.genres = GENRES

    async def recommend(self, taste: np.ndarray, exclude: list[str]) -> list[dict[str, Any]]:
        """The top-k films for a taste vector, leaving out what the user has already watched."""
        k = self.params.recommend_k
        ids = await self.index.search(taste, k + len(exclude))
        skip = set(exclude)
        return [self.films[i] for i in ids if i not in skip][:k]
