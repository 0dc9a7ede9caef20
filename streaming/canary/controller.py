"""The canary state machine, pure: model updates and labelled outcomes in, decisions out.

The controller follows ``model.updates`` (its state is whatever the last updates say, so a
restarted controller resumes the same canary) and, for the current step, tallies the
labelled outcomes of the champion's and the challenger's scores made since the step began.
A new challenger (at 0%) starts the schedule at its first step. Then, at each evaluation:

- the challenger is *worse* (see :func:`~streaming.canary.evidence.compare`) → ``rolled_back``;
- it is *not worse* → the next step (``canary_step``), or ``promoted`` when the next
  percentage is 100;
- too few labels or inconclusive → hold, until ``step_timeout_s`` → ``rolled_back``.

Every decision is a ModelUpdate carrying its evidence (labels, metrics, statistics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from streaming.canary.evidence import Tally, compare
from streaming.config import CanarySettings, DecisionSettings
from streaming.control.plan import ServingPlan, fold
from streaming.control.updates import canary_decision_update
from streaming.events import ModelUpdate


@dataclass
class CanaryState:
    """The serving plan the updates describe, and when its current step began."""

    plan: ServingPlan = field(default_factory=ServingPlan)
    step_started_at: datetime | None = None

    @property
    def champion(self) -> str | None:
        return self.plan.champion

    @property
    def challenger(self) -> str | None:
        return self.plan.challenger

    @property
    def percent(self) -> float:
        return self.plan.challenger_percent


@dataclass
class CanaryController:
    settings: CanarySettings
    model_name: str
    decision: DecisionSettings = field(default_factory=DecisionSettings)  # the costs decisions are judged by
    state: CanaryState = field(default_factory=CanaryState)
    tallies: dict[str, Tally] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._reset_tallies()

    def _reset_tallies(self) -> None:
        fp, fn = self.decision.fp_cost, self.decision.fn_cost
        self.tallies = {"champion": Tally(fp, fn), "challenger": Tally(fp, fn)}

    # -- inputs ------------------------------------------------------------------------

    def on_update(self, update: ModelUpdate) -> None:
        if update.model_name != self.model_name:
            return
        s = self.state
        before, s.plan = s.plan, fold([update], s.plan)
        if s.plan != before:  # a new pair or a new step: count from here
            s.step_started_at = update.created_at
            self._reset_tallies()

    def on_outcome(
        self,
        role: str,
        version: str,
        score: float,
        label: int,
        decision: bool,
        latency_ms: float,
        scored_at: datetime,
    ) -> None:
        """A labelled score; counted only if made by the serving pair within the current step."""
        s = self.state
        if s.challenger is None or s.step_started_at is None or scored_at < s.step_started_at:
            return
        if (role, version) not in (("champion", s.champion), ("challenger", s.challenger)):
            return
        self.tallies[role].add(score, label, decision, latency_ms)

    # -- the decision --------------------------------------------------------------------

    def decide(self, now: datetime) -> ModelUpdate | None:
        s, c = self.state, self.settings
        if s.challenger is None or s.step_started_at is None:
            return None
        if s.percent <= 0:
            return self._update("canary_step", c.schedule[0], "canary started", {})
        comparison = compare(
            self.tallies["champion"],
            self.tallies["challenger"],
            margin=c.margin,
            confidence=c.confidence,
            latency_factor=c.latency_factor,
            min_labels=c.min_labels,
        )
        evidence = {**comparison.evidence, "step_percent": s.percent, "verdict": comparison.verdict}
        if comparison.verdict == "worse":
            return self._update("rolled_back", 0.0, comparison.reason, evidence)
        if comparison.verdict == "not_worse":
            later = [p for p in c.schedule if p > s.percent]
            if not later or later[0] >= 100:
                return self._update("promoted", 100.0, comparison.reason, evidence)
            return self._update("canary_step", later[0], comparison.reason, evidence)
        if (now - s.step_started_at).total_seconds() > c.step_timeout_s:
            return self._update(
                "rolled_back",
                0.0,
                f"timeout: undecided after {c.step_timeout_s:.0f}s ({comparison.reason})",
                evidence,
            )
        return None

    def _update(
        self,
        status: Literal["canary_step", "promoted", "rolled_back"],
        percent: float,
        reason: str,
        evidence: dict[str, Any],
    ) -> ModelUpdate:
        s = self.state
        assert s.challenger is not None
        return canary_decision_update(
            self.model_name, s.challenger, s.champion, status, percent, reason, evidence
        )
