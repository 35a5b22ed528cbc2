"""Film-site users: each round one chosen action; chats and posts reach friends, who answer for themselves."""

from __future__ import annotations

from typing import Any

from simulation.core import Agent, StepContext

from .catalogue import film_text
from .environment import STARS, SiteView

ACTIONS = ["watch", "feel", "rate", "chat", "post"]


class UserAgent(Agent):
    """Watches recommended films, writes what it feels, rates, chats with a friend, posts to friends."""

    agent_type = "user"
    __slots__ = ()

    def initial_state(self) -> dict[str, Any]:
        return {"watched": [], "unrated": [], "felt": [], "ratings": {}}

    def persona(self, ctx: StepContext[SiteView]) -> str:
        return ctx.render("user_system.j2")

    def _options(self, ctx: StepContext[SiteView]) -> list[str]:
        s = self.state
        can = {"watch": True, "feel": bool(s["watched"]) and s["watched"][-1] not in s["felt"],
               "rate": bool(s["unrated"]), "chat": bool(ctx.world.friends.get(self.id)),
               "post": bool(ctx.world.friends.get(self.id))}
        return [a for a in ACTIONS if can[a]]

    async def act(self, ctx: StepContext[SiteView]) -> None:
        memory = await self.memory.recall(ctx, query=self.profile["bio"])
        options = self._options(ctx)
        choice, ok = await ctx.llm.choose("choose_action", ctx.messages_for(
            self.persona(ctx), ctx.render("choose_action.j2", memory=memory, options=options)), options)
        if choice is None:  # no decision: the user does nothing this round
            ctx.act("choose_action", valid=False, options=options, decision=None)
            return
        await getattr(self, f"_{choice}")(ctx, memory, ok)

    async def _watch(self, ctx: StepContext, memory: str, ok: bool) -> None:
        taste = (await ctx.embed([f"{' '.join(self.profile['favorite_genres'])}. {memory}"]))[0]
        films = await ctx.world.recommend(taste, self.state["watched"])
        if not films:
            ctx.act("idle", reason="nothing left to recommend")
            return
        pick, ok2 = await ctx.llm.choose("pick_film", ctx.messages_for(self.persona(ctx), ctx.render(
            "pick_film.j2", films=[film_text(f) for f in films])), [str(i + 1) for i in range(len(films))])
        if pick is None:
            ctx.act("pick_film", valid=False, shown=[f["id"] for f in films], film=None)
            return
        film = films[int(pick) - 1]
        self.state["watched"].append(film["id"])
        self.state["unrated"].append(film["id"])
        ctx.act("watch", valid=ok and ok2, calls=["pick_film"], film=film["id"], genres=film["genres"],
                shown=[f["id"] for f in films])
        await self.memory.add(ctx, f"In round {ctx.round} I watched {film_text(film)}.")

    async def _feel(self, ctx: StepContext, memory: str, ok: bool) -> None:
        film = ctx.world.films[self.state["watched"][-1]]
        text = await ctx.llm.chat("feel", ctx.messages_for(self.persona(ctx), ctx.render("feel.j2", film=film_text(film))),
                                  max_tokens=ctx.world.params.text_max_tokens)
        self.state["felt"].append(film["id"])
        ctx.act("feel", valid=ok, film=film["id"], text=text)
        await self.memory.add(ctx, f"My feeling about {film['title']}: {text}")

    async def _rate(self, ctx: StepContext, memory: str, ok: bool) -> None:
        film = ctx.world.films[self.state["unrated"].pop(0)]
        stars, ok2 = await ctx.llm.choose("rate", ctx.messages_for(self.persona(ctx), ctx.render(
            "rate.j2", film=film_text(film), stars=STARS)), STARS)
        if stars is None:  # no rating given: the film stays unrated
            self.state["unrated"].insert(0, film["id"])
            ctx.act("rate", valid=False, film=film["id"], stars=None)
            return
        self.state["ratings"][film["id"]] = float(stars)
        ctx.act("rate", valid=ok and ok2, film=film["id"], stars=float(stars))

    async def _chat(self, ctx: StepContext, memory: str, ok: bool) -> None:
        friend = ctx.rng.choice(ctx.world.friends[self.id])
        text = await ctx.llm.chat("chat", ctx.messages_for(self.persona(ctx), ctx.render(
            "chat.j2", friend=ctx.world.names[friend], memory=memory)), max_tokens=ctx.world.params.text_max_tokens)
        ctx.send(friend, "chat", text=text)
        ctx.act("chat", valid=ok, to=friend, text=text)

    async def _post(self, ctx: StepContext, memory: str, ok: bool) -> None:
        text = await ctx.llm.chat("post", ctx.messages_for(self.persona(ctx), ctx.render("post.j2", memory=memory)),
                                  max_tokens=ctx.world.params.text_max_tokens)
        friends = ctx.world.friends[self.id]
        for f in friends:
            ctx.send(f, "post", text=text)
        ctx.act("post", valid=ok, text=text, audience=len(friends))

    async def reply(self, ctx: StepContext[SiteView]) -> None:
        """A friend spoke to me (I answer in my own words) or posted (I take it in)."""
        posts = [m for m in ctx.inbox if m.kind == "post"][: ctx.world.params.posts_remembered]
        for m in posts:
            ctx.act("read_post", author=m.sender)
            await self.memory.add(ctx, f"{ctx.world.names[m.sender]} posted: {m.data['text']}")
        for m in ctx.inbox:
            if m.kind != "chat":
                continue
            name = ctx.world.names[m.sender]
            text = await ctx.llm.chat("chat_reply", ctx.messages_for(self.persona(ctx), ctx.render(
                "chat_reply.j2", friend=name, said=m.data["text"])), max_tokens=ctx.world.params.text_max_tokens)
            ctx.send(m.sender, "chat_reply", text=text)
            ctx.act("chat_reply", to=m.sender, text=text)
            await self.memory.add(ctx, f"{name} told me: {m.data['text']}")

    async def hear(self, ctx: StepContext[SiteView]) -> None:
        for m in ctx.inbox:
            if m.kind == "chat_reply":
                ctx.act("heard_reply", frm=m.sender)
                await self.memory.add(ctx, f"{ctx.world.names[m.sender]} replied: {m.data['text']}")
