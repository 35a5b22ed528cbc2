"""Job seekers and interviewers. Each speaks only for itself, through its own LLM calls."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from simulation.core import Agent, StepContext

from .environment import JobBoard
from .fit import meets_requirements, pay_share, pay_words
from .population import experience_years


def cv_text(p: dict[str, Any]) -> str:
    work = "; ".join(f"{w['position']} at {w['company']} ({w['time']})" for w in p["work_history"]) or "none"
    years = experience_years(p)
    # the summed figure, stated: a small model compares numbers it is given, but does not add up date spans
    total = f" Total experience: {years} years." if years is not None else ""
    age = f", {p['age']}" if p.get("age") is not None else ""
    return f"{p['name']}{age}, {p['education']}. Experience: {work}.{total} Skills: {', '.join(p['skills'])}."


@functools.lru_cache(maxsize=256)
def apply_model(n: int, max_items: int) -> type[BaseModel]:
    idx = Literal[tuple(range(1, n + 1))]  # type: ignore[valid-type]
    return create_model("Applications", apply=(list[idx], Field(max_length=max_items)))


def offer_options(n: int) -> list[str]:
    """The options accepting each of ``n`` offers: "accept offer 1", ... An answer "1" shares its token
    with job_count's "1", and corrections of offer responses pushed "1" down there (runs M, N); the
    verb makes accepting and declining part at their first token, and keeps the options few (the
    exam's balanced accuracy and the training weights count answers by option)."""
    return [f"accept offer {i}" for i in range(1, n + 1)]


def pay_note(share: float | None) -> str:
    """", up to 62% of the salary you want: far below the salary you want" for a pay share; "" for None."""
    return "" if share is None else f", up to {share:.0%} of the salary you want: {pay_words(share)}"


class SeekerAgent(Agent):
    """Looks for work: decides whether and how widely to search, applies, answers, accepts."""

    agent_type = "seeker"
    __slots__ = ()

    def initial_state(self) -> dict[str, Any]:
        return {"job": None, "applied": []}

    def persona(self, ctx: StepContext[JobBoard]) -> str:
        return ctx.render("seeker_system.j2", cv=cv_text(self.profile))

    async def search(self, ctx: StepContext[JobBoard]) -> None:
        if self.state["job"]:
            ctx.act("idle", reason="employed")
            return
        p = ctx.world.params
        system = self.persona(ctx)
        memory = await self.memory.recall(ctx, query=cv_text(self.profile))
        msgs = ctx.messages_for(system, ctx.render("search.j2", memory=memory))
        decision, ok = await ctx.llm.choose("search_decision", msgs, ["search", "wait"])
        # no valid answer is "no decision": recorded as invalid, and the seeker does nothing this round
        ctx.act("search_decision", valid=ok, search=None if decision is None else decision == "search")
        if decision == "wait":
            await self.memory.add(ctx, f"In round {ctx.round} I did not look for a job.")
        if decision != "search":
            return
        count, ok = await ctx.llm.choose("job_count", ctx.messages_for(system, ctx.render("job_count.j2", k=p.search_k)),
                                         [str(i) for i in range(1, p.search_k + 1)])
        ctx.act("search", valid=ok, calls=["job_count"], count=None if count is None else int(count))
        if count is None:
            return
        query = (await ctx.embed([cv_text(self.profile) + " " + memory]))[0]
        jobs = await ctx.world.search(query, int(count))
        if not jobs:
            return
        if p.applications == "list":
            chosen = await self._apply_list(ctx, system, jobs)
        else:
            chosen = await self._apply_each(ctx, system, jobs)
        if chosen is None:
            return
        self.state["applied"] = [jobs[i - 1][0] for i in chosen]
        for i in chosen:
            job_id, job = jobs[i - 1]
            # with state_requirements the application carries the requirements met (the board's tracking
            # system computes it), which the hiring manager's prompts then state
            fit = meets_requirements(self.profile, job) if p.state_requirements else None
            ctx.send(job_id, "application", cv=cv_text(self.profile), **({"fit": list(fit)} if fit else {}))
            ctx.act("apply", job=job_id)
        names = ", ".join(jobs[i - 1][1]["title"] for i in chosen) or "nothing"
        await self.memory.add(ctx, f"In round {ctx.round} I searched and applied to: {names}.")

    async def _apply_each(self, ctx: StepContext[JobBoard], system: str,
                          jobs: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """One apply/skip choice per shown posting: each answer is about one posting's content (its pay
        and requirements in the prompt), so checks name a right option and corrections teach content,
        not a list whose commonest correction was "none" (runs K, Q)."""
        answers = await asyncio.gather(*(ctx.llm.choose("apply_posting", ctx.messages_for(
            system, ctx.render("apply_posting.j2", job=job, **self.fit(ctx, job))), ["apply", "skip"])
            for _, job in jobs))
        wanted = [i for i, (pick, _) in enumerate(answers, 1) if pick == "apply"]
        chosen = wanted[: ctx.world.params.max_applications]  # the search's best-ranked first
        for i, ((job_id, _), (pick, ok)) in enumerate(zip(jobs, answers, strict=True), 1):
            # decision: the model's own answer, which checks grade; sent: whether the cap let it through
            ctx.act("apply_posting", valid=ok, job=job_id, decision=pick, sent=i in chosen)
        return chosen

    def fit(self, ctx: StepContext[JobBoard], job: dict[str, Any]) -> dict[str, Any]:
        """What a prompt states of this seeker's fit to ``job`` (``state_fit``): ``share``, its top pay
        against the desired salary, and ``fit``, (requirements met, known); None where unknown or off. The
        135M model did not learn to compare a posting's pay with a salary in its persona from corrections (run U)."""
        if not ctx.world.params.state_fit:
            return {"share": None, "pay": None, "fit": None}
        share = pay_share(job, self.profile.get("desired_salary"))
        return {"share": share, "pay": None if share is None else pay_words(share), "fit": meets_requirements(self.profile, job)}

    def pay_share_of(self, ctx: StepContext[JobBoard], job: dict[str, Any]) -> float | None:
        """``job``'s top pay as a share of this seeker's desired salary where ``state_fit`` is on, else None."""
        return pay_share(job, self.profile.get("desired_salary")) if ctx.world.params.state_fit else None

    async def _apply_list(self, ctx: StepContext[JobBoard], system: str,
                          jobs: list[tuple[str, dict[str, Any]]]) -> list[int] | None:
        """One JSON answer naming the postings applied to (``applications: list``); None: no valid answer."""
        p = ctx.world.params
        model = apply_model(len(jobs), p.max_applications)
        picked, ok = await ctx.llm.json("apply", ctx.messages_for(system, ctx.render("apply.j2", jobs=[j for _, j in jobs],
                                                                                      max_apps=p.max_applications)),
                                        model)
        # the answer as given (a repeated posting included), then one action per posting applied to
        ctx.act("apply_decision", valid=ok, calls=["apply"], shown=[j for j, _ in jobs],
                apply=None if picked is None else picked["apply"])
        if picked is None:
            return None
        return sorted(set(picked["apply"]))[: p.max_applications]

    async def answer(self, ctx: StepContext[JobBoard]) -> None:
        system = self.persona(ctx)
        questions = [m for m in ctx.inbox if m.kind == "question"]
        replies = await asyncio.gather(*(ctx.llm.chat(
            "answer", ctx.messages_for(system, ctx.render("answer.j2", job=ctx.world.jobs[m.sender], question=m.data["text"])),
            max_tokens=ctx.world.params.dialogue_max_tokens) for m in questions))
        for m, reply in zip(questions, replies, strict=True):
            ctx.send(m.sender, "answer", text=reply)
            ctx.act("answer", job=m.sender, text=reply)

    async def respond(self, ctx: StepContext[JobBoard]) -> None:
        offers = [m.sender for m in ctx.inbox if m.kind == "offer"]
        rejected = [ctx.world.jobs[m.sender]["name"] for m in ctx.inbox if m.kind == "rejection"]
        if rejected:  # one memory for the round's rejections, not a chain of them
            await self.memory.add(ctx, f"Rejected after the interview in round {ctx.round}: {'; '.join(rejected)}.")
        if not offers:
            return
        if self.state["job"]:
            for job in offers:
                ctx.send(job, "decline")
            ctx.act("decline_all", offers=offers, reason="already employed")
            return
        # each offer with its pay: the seeker weighs (and the salary checks grade) what the prompt shows
        labels = offer_options(len(offers))
        titles = [f"{ctx.world.jobs[j]['name']}, {ctx.world.jobs[j]['salary']}{pay_note(self.pay_share_of(ctx, ctx.world.jobs[j]))}"
                  if ctx.world.jobs[j].get("salary") else ctx.world.jobs[j]["name"] for j in offers]
        choices = [*labels, "decline all"]
        msgs = ctx.messages_for(self.persona(ctx), ctx.render("respond.j2", offers=titles))
        pick, ok = await ctx.llm.choose("respond_offers", msgs, choices)
        # the answer as given, accept or decline alike, so one check grades both (and the exam any answer)
        job = None if pick in (None, "decline all") else offers[labels.index(pick)]
        ctx.act("respond_offers", valid=ok, calls=["respond_offers"], offers=offers, options=labels, decision=pick,
                job=job)
        if pick is None:  # no decision: the offers stay unanswered and lapse
            return
        if pick == "decline all":
            for job in offers:
                ctx.send(job, "decline")
            ctx.act("decline_all", valid=ok, offers=offers)
            await self.memory.add(ctx, f"I declined {len(offers)} offer(s) in round {ctx.round}.")
            return
        self.state["job"] = job
        for other in offers:
            ctx.send(other, "accept" if other == job else "decline")
        ctx.act("accept", valid=ok, job=job, offers=offers)
        await self.memory.add(ctx, f"I accepted the offer for {ctx.world.jobs[job]['name']} in round {ctx.round}.")


class InterviewerAgent(Agent):
    """Owns one job: screens CVs with its own model and memory, interviews, makes offers."""

    agent_type = "interviewer"
    __slots__ = ()

    def initial_state(self) -> dict[str, Any]:
        return {"hires": 0, "candidates": {}}

    def persona(self, ctx: StepContext[JobBoard]) -> str:
        return ctx.render("interviewer_system.j2", job=self.profile)

    async def screen(self, ctx: StepContext[JobBoard]) -> None:
        self.state["candidates"] = {}
        system = self.persona(ctx)
        memory = await self.memory.recall(ctx)
        apps = [m for m in ctx.inbox if m.kind == "application"]
        # every CV is judged on its own, so the calls go out together
        verdicts = await asyncio.gather(*(ctx.llm.choose("screen", ctx.messages_for(
            system, ctx.render("screen.j2", cv=m.data["cv"], memory=memory, fit=m.data.get("fit"))), ["pass", "reject"])
            for m in apps))
        for m, (result, ok) in zip(apps, verdicts, strict=True):
            ctx.act("screen", valid=ok, seeker=m.sender, result=result)  # None: no decision, no interview
            if result == "pass":
                self.state["candidates"][m.sender] = {"cv": m.data["cv"], "dialogue": [], "fit": m.data.get("fit")}
                ctx.send(self.id, "interview", seeker=m.sender)
        n = len(self.state["candidates"])
        await self.memory.add(ctx, f"Round {ctx.round}: screened {len(apps)} CVs, invited {n}.")

    async def ask(self, ctx: StepContext[JobBoard]) -> None:
        system = self.persona(ctx)
        turns = []
        for m in ctx.inbox:
            seeker = m.data["seeker"] if m.kind == "interview" else m.sender
            cand = self.state["candidates"].get(seeker)
            if cand is None:
                continue
            if m.kind == "interview":
                ctx.act("interview", seeker=seeker)
            else:
                cand["dialogue"].append(["candidate", m.data["text"]])
            turns.append((seeker, cand))
        questions = await asyncio.gather(*(ctx.llm.chat(
            "ask", ctx.messages_for(system, ctx.render("ask.j2", cv=cand["cv"], dialogue=cand["dialogue"])),
            max_tokens=ctx.world.params.dialogue_max_tokens) for _, cand in turns))
        for (seeker, cand), q in zip(turns, questions, strict=True):
            cand["dialogue"].append(["interviewer", q])
            ctx.send(seeker, "question", text=q)
            ctx.act("question", calls=["ask"], seeker=seeker, text=q)

    async def decide(self, ctx: StepContext[JobBoard]) -> None:
        system = self.persona(ctx)
        openings = ctx.world.params.openings_per_job - self.state["hires"]
        interviewed = []
        for m in ctx.inbox:
            cand = self.state["candidates"].get(m.sender)
            if cand is None or m.kind != "answer":
                continue
            cand["dialogue"].append(["candidate", m.data["text"]])
            interviewed.append((m.sender, cand))
        asked = openings > 0
        if asked:
            verdicts = await asyncio.gather(*(ctx.llm.choose("offer_decision", ctx.messages_for(
                system, ctx.render("decide.j2", cv=cand["cv"], dialogue=cand["dialogue"], fit=cand.get("fit"))),
                ["hire", "keep looking"])
                for _, cand in interviewed))
        else:  # the job is full: nobody is asked, every candidate hears "no"
            verdicts = [(None, True)] * len(interviewed)
        offered = 0
        for (seeker, _), (verdict, ok) in zip(interviewed, verdicts, strict=True):
            if asked and verdict is None:  # no decision: the candidate hears nothing this round
                ctx.act("offer_decision", valid=False, seeker=seeker, decision=None, result=None)
                continue
            result = "offer" if verdict == "hire" else "reject"
            full = not asked or (result == "offer" and offered >= openings)
            if full:  # the job has fewer openings than good candidates; first come first served
                result = "reject"
            offered += result == "offer"
            ctx.send(seeker, "offer" if result == "offer" else "rejection")
            # decision: the model's own answer (None when it was not asked), which checks grade;
            # result: what the candidate was told, after the openings capped it
            ctx.act("offer_decision", valid=ok, seeker=seeker, decision=verdict, result=result,
                    **({"reason": "no openings"} if full else {}))

    async def notify(self, ctx: StepContext[JobBoard]) -> None:
        for m in ctx.inbox:
            if m.kind == "accept":
                self.state["hires"] += 1
                ctx.act("hire", seeker=m.sender)
                await self.memory.add(ctx, f"Round {ctx.round}: {m.sender} accepted our offer.", importance=7.0)
            elif m.kind == "decline":
                ctx.act("declined", seeker=m.sender)
                await self.memory.add(ctx, f"Round {ctx.round}: {m.sender} declined our offer.", importance=5.0)
