"""The runtime interface: where agent groups live and how the driver talks to them.

The driver makes one call per group per phase (and per bulk operation), and waits for all groups
together; it never steps agents one by one. Both runtimes pass one contract-test suite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from ..core.phase import Phase
from .host import GroupHost, GroupSpec, PhaseOutput

P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class GroupCall:
    """One call to one group host, by reference to the :class:`GroupHost` method:
    ``GroupCall(0, GroupHost.agent_state, ("voter-3",))``. A renamed method fails here, and under a
    type checker, instead of as an unknown string on a remote process."""

    index: int
    method: Callable[..., Any]
    args: tuple[Any, ...] = ()


def host_method(method: Callable[..., Any]) -> str:
    """The name a host dispatches on; only :class:`GroupHost`'s own methods are accepted."""
    name = getattr(method, "__name__", "")
    if getattr(GroupHost, name, None) is not method:
        raise TypeError(f"{method!r} is not a GroupHost method")
    return name


class GroupLost(Exception):
    """A group's process died; the driver rebuilds it and re-runs its part of the round."""

    def __init__(self, index: int, reason: str):
        super().__init__(f"agent group {index} lost: {reason}")
        self.index = index
        self.reason = reason


class Runtime(ABC):
    """A set of group hosts addressed by index ``0 .. n_groups - 1``."""

    name = "runtime"

    @property
    @abstractmethod
    def n_groups(self) -> int: ...

    @abstractmethod
    def connect(self) -> int:
        """Get ready (join or start a cluster); return how many groups the run will have."""

    @abstractmethod
    async def start(self, specs: list[GroupSpec]) -> None:
        """Create one host per spec."""

    async def call(self, index: int, method: Callable[Concatenate[GroupHost, P], Any], *args: P.args) -> Any:
        """Call a :class:`GroupHost` method (``GroupHost.stats``) on one host; a dead host raises
        :class:`GroupLost`."""
        return (await self.gather([GroupCall(index, method, args)]))[0]

    async def broadcast(self, method: Callable[Concatenate[GroupHost, P], Any], *args: P.args) -> list[Any]:
        """Call a :class:`GroupHost` method with the same arguments on every host, concurrently."""
        return await self.gather([GroupCall(i, method, args) for i in range(self.n_groups)])

    @abstractmethod
    async def gather(self, calls: list[GroupCall]) -> list[Any]:
        """Issue every call at once and wait for all; results in order, a dead host raises GroupLost."""

    @abstractmethod
    async def run_phase(self, phase: Phase, round_: int, inboxes: list[dict[str, list]],
                        on_step: Callable[[int], None] | None = None) -> list[PhaseOutput | GroupLost]:
        """Run one phase on every group; a lost group's slot holds a :class:`GroupLost`."""

    @abstractmethod
    async def replace(self, index: int, spec: GroupSpec) -> None:
        """Start a fresh, empty host for a lost group."""

    def share(self, value: Any) -> Any:
        """A handle for a large value sent to every host (the Ray runtime stores it once)."""
        return value

    @abstractmethod
    async def close(self) -> None: ...
