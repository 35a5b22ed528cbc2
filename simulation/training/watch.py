"""Watching a training from another thread: its steps and losses as they are logged, and a request to
cancel it, honoured at the next step (no adapter is written then)."""

from __future__ import annotations

from typing import Protocol


class TrainingCancelled(RuntimeError):
    """The training was cancelled before it finished; its partial folder is removed."""


class TrainWatch(Protocol):
    """What :func:`simulation.training.train` reports to, step by step."""

    def on_step(self, step: int, total: int) -> None:
        """``step`` of ``total`` optimiser steps done (the reward model's, then the policy's, for PPO)."""

    def on_loss(self, step: int, loss: float) -> None:
        """A logged training loss."""

    def cancelled(self) -> bool:
        """True once someone asked to stop; the training raises :class:`TrainingCancelled` at the next step."""
