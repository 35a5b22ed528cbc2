"""The chat room: who may speak next (turn order or an @mention), a turn cap, a goodbye rule, transcripts."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulation.core import Action, Environment, Message, Phase

GOODBYE = re.compile(r"\b(goodbye|bye)\b", re.IGNORECASE)


class ChattingParams(BaseModel):
    """The ``scenario:`` section of ``simulation_config.yml``."""

    model_config = ConfigDict(extra="forbid")
    room_size: int = Field(default=5, ge=2, le=100, description="members per chat room")
    max_turns: int = Field(default=8, ge=1, le=200, description="messages per session (round) and room at most")
    context_lines: int = Field(default=6, ge=1, le=100, description="transcript lines a speaker sees")
    message_max_tokens: int = Field(default=40, ge=4, le=512)
    topic: str = "this week's priorities"


class Room:
    """One session of one room: who is present, whose turn it is, what was said."""

    def __init__(self, room_id: str, members: list[str]):
        self.id = room_id
        self.members = members
        self.present: list[str] = []
        self.transcript: list[dict[str, Any]] = []
        self.next_speaker: str | None = None
        self.last_speaker: str | None = None


class ChatRooms(Environment):
    """Rooms of ``room_size`` members; every round is a new session of every room."""

    def __init__(self, params: dict[str, Any], seed: int):
        super().__init__(params, seed)
        self.p = ChattingParams.model_validate(params)
        self.rooms: dict[str, Room] = {}
        self.room_of: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.transcripts: list[dict[str, Any]] = []  # every message of every session: the stored transcript

    async def setup(self, sim: Any) -> None:
        members = sim.profiles("member")
        self.names = {m: p["name"] for m, p in members}
        ids = [m for m, _ in members]
        for i in range(0, len(ids), self.p.room_size):
            room = f"room-{i // self.p.room_size}"
            self.rooms[room] = Room(room, ids[i:i + self.p.room_size])
            for m in ids[i:i + self.p.room_size]:
                self.room_of[m] = room

    def world(self) -> dict[str, Any]:
        return {"names": self.names, "params": self.p, "room_of": self.room_of}

    def phases(self, round_: int) -> list[Phase]:
        return [Phase("join", "member", "join")] + [Phase(f"turn_{t}", "member", "speak", "inbox")
                                                     for t in range(1, self.p.max_turns + 1)]

    def observe(self, phase: Phase, round_: int, actions: list[Action], messages: list[Message]) -> None:
        if phase.name == "join":
            self.counts.clear()
            for room in self.rooms.values():
                room.present, room.transcript, room.last_speaker = [], [], None
        spoke: set[str] = set()
        for a in actions:
            member, action, data = a.agent_id, a.action, a.data
            room = self.rooms[self.room_of[member]]
            if action == "join":
                room.present.append(member)
                self.counts["joins"] += 1
            elif action == "say":
                line = {"round": round_, "room": room.id, "turn": len(room.transcript) + 1, "speaker": member,
                        "name": self.names[member], "text": data["text"]}
                room.transcript.append(line)
                self.transcripts.append(line)
                room.last_speaker = member
                spoke.add(room.id)
                self.counts["messages"] += 1
                self.counts["words"] += len(data["text"].split())
                if GOODBYE.search(data["text"]):  # the goodbye rule: whoever says goodbye leaves
                    room.present.remove(member)
                    self.counts["goodbyes"] += 1
        for room in self.rooms.values():
            self._choose_next(room, phase.name == "join" or room.id in spoke)

    def _choose_next(self, room: Room, going_on: bool) -> None:
        """An @mentioned member who is present speaks next; otherwise the next present one in turn order."""
        room.next_speaker = None
        if not going_on or len(room.present) < 2:
            return  # the session is over: nobody spoke, or fewer than two are left
        if room.transcript:
            text = room.transcript[-1]["text"].lower()
            for m in room.present:
                if m != room.last_speaker and f"@{self.names[m].split()[0]}".lower() in text:
                    room.next_speaker = m
                    self.counts["mentions"] += 1
                    return
        start = room.members.index(room.last_speaker) + 1 if room.last_speaker else 0
        for k in range(len(room.members)):
            m = room.members[(start + k) % len(room.members)]
            if m in room.present and m != room.last_speaker:
                room.next_speaker = m
                return

    def route(self, phase: Phase, messages: list[Message]) -> dict[str, list[Message]]:
        inbox: dict[str, list[Message]] = {}
        for room in self.rooms.values():
            if room.next_speaker is not None:
                inbox[room.next_speaker] = [Message(room.id, room.next_speaker, "turn", {
                    "present": [self.names[m] for m in room.present],
                    "transcript": room.transcript[-self.p.context_lines:]})]
        return inbox

    def metrics(self, round_: int) -> dict[str, float]:
        c = self.counts
        return {"joins": float(c["joins"]), "messages": float(c["messages"]), "mentions": float(c["mentions"]),
                "goodbyes": float(c["goodbyes"]),
                "mean_words": round(c["words"] / c["messages"], 2) if c["messages"] else 0.0,
                "rooms_ended_early": float(sum(1 for r in self.rooms.values() if len(r.present) < 2))}

    def summary(self) -> dict[str, Any]:
        return {"rooms": len(self.rooms), "messages": len(self.transcripts)}

    def get_state(self) -> dict[str, Any]:
        return {"transcripts": self.transcripts}

    def set_state(self, s: dict[str, Any]) -> None:
        self.transcripts = list(s["transcripts"])
