"""The row engine: ranks pages, logs them durably, records rewards and learns."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from banditkit import vw
from banditkit.dsjson import CcbSlot, JoinedLine, ccb_decision_line
from banditkit.errors import InvalidInputError
from banditkit.eventlog import EventLogWriter, iso_timestamp
from banditkit.loop import LoopEngine
from banditkit.rows.decide import DecidedPage, decide_page
from banditkit.rows.join import joined_page_line
from banditkit.rows.store import PageStore, PostgresRowStore, RowStore
from banditkit.rows.types import (
    PageDecision,
    PageRules,
    Row,
    Slot,
    SlotDecision,
    check_excluded,
    check_rows,
    check_slots,
)
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent, RewardRecord, open_store
from banditkit.types import Features, check_event_id, check_features, check_reward

__all__ = ["RowEngine", "ccb_args"]


def ccb_args(cb_args: str) -> str:
    """The ``--ccb_explore_adf`` arguments for a ``--cb_explore_adf`` policy.

    The loop settings keep one readable policy; each slot of a page explores as
    that CB policy would.
    """
    return " ".join("--ccb_explore_adf" if token == "--cb_explore_adf" else token
                    for token in cb_args.split())


class RowEngine(LoopEngine):
    """Ranks pages of rows, records per-slot and page rewards, and learns.

    Build it with :meth:`open`. Thread-safe like :class:`~banditkit.engine.Engine`:
    ``rank_rows``, rewards and ``activate`` from many threads, ``process_due``
    from one learner at a time.

    Parameters
    ----------
    store : PageStore
        Pages, rewards, models and settings.
    log : EventLogWriter
        Where joined CCB lines are appended.
    models_dir : path
        Where each published model is also written as a VW model file.
    clock : callable, default=time.time
        Current time in Unix seconds.
    rules : PageRules, default=None
        Rules of every page unless a call passes its own; None means none.
    max_rows : int, default=256
        Most candidate rows per page.
    refresh_seconds : float, default=1.0
        How often ranking looks for a new snapshot and settings.
    """

    def __init__(self, *, store: PageStore, log: EventLogWriter, models_dir: Path,
                 clock: Callable[[], float] = time.time, rules: PageRules | None = None,
                 max_rows: int = 256, refresh_seconds: float = 1.0) -> None:
        super().__init__(store=store, log=log, models_dir=models_dir, clock=clock,
                         refresh_seconds=refresh_seconds)
        self.rules = rules
        self.max_rows = max_rows

    # -- hooks of the loop ----------------------------------------------------------

    def _learner_args(self, settings: LoopSettings) -> str:
        return ccb_args(settings.learner_args())

    def _new_learner(self, args: str, model_data: bytes | None = None) -> vw.VWPageLearner:
        return vw.VWPageLearner(args=args, model_data=model_data)

    @classmethod
    def open(cls, data_dir: str | Path, *, settings: LoopSettings | None = None,
             clock: Callable[[], float] = time.time, synchronous: str = "NORMAL",
             rules: PageRules | None = None, max_rows: int = 256,
             database_url: str | None = None, log_dir: str | Path | None = None
             ) -> RowEngine:
        """Open (or create) the row engine of a data directory.

        Its files sit in one folder beside the single-slot engine's, so that
        readers of ``logs/`` never meet CCB lines: ``rows/rows.sqlite3``,
        ``rows/logs/dt=.../events.dsjson`` and ``rows/models/``. With
        ``database_url`` the store's tables are in that PostgreSQL database's
        ``banditkit_rows`` schema instead of ``rows.sqlite3``. With ``log_dir`` the
        joined log goes to ``<log_dir>/rows/logs`` instead (a folder every host reaches).
        """
        root = Path(data_dir) / "rows"
        store = open_store(root, database_url=database_url, name="rows",
                           schema="banditkit_rows", synchronous=synchronous,
                           sqlite=RowStore, postgres=PostgresRowStore)
        logs = (root if log_dir is None else Path(log_dir) / "rows") / "logs"
        engine = cls(store=store, log=EventLogWriter(root=logs),
                     models_dir=root / "models", clock=clock, rules=rules, max_rows=max_rows)
        if settings is not None:
            engine.update_settings(settings)
        return engine

    # -- settings and snapshots ----------------------------------------------------

    def follow(self, settings: LoopSettings) -> None:
        """Adopt the single-slot loop's settings, all but its policy.

        The main policy's interactions name artwork namespaces; the row loop
        keeps its own VW arguments.
        """
        current = self._load_settings()
        wanted = settings.replace(policy_args=current.policy_args)
        if current != wanted:
            self.update_settings(wanted)

    # -- decisions -------------------------------------------------------------

    def rank_rows(self, context: Features, candidate_rows: Sequence[Row],
                  n_slots: int | None = None, *, slots: Sequence[Slot] | None = None,
                  rules: PageRules | None = None, excluded: Iterable[str] = (),
                  event_id: str | None = None, defer_activation: bool = False,
                  extra: dict | None = None) -> PageDecision:
        """Fill a page, log it durably, and return each slot's row and probability.

        Parameters
        ----------
        context : Features
            Member and moment features.
        candidate_rows : sequence of Row
            Candidates, each with features and an optional genre.
        n_slots : int, default=None
            Slots to fill (ids ``"1".."n"``); give this or ``slots``.
        slots : sequence of Slot, default=None
            Explicit slots (ids, features, baselines).
        rules : PageRules, default=None
            This page's rules; None uses the engine's.
        excluded : iterable of str
            Row ids not to show this member.
        event_id : str, default=None
            Names the page and seeds every slot's draw; made if None.
        defer_activation : bool, default=False
            Rewards count only after :meth:`activate`.
        extra : dict, default=None
            Stored under ``_banditkit`` in the log.

        Raises
        ------
        InvalidInputError, DuplicateEventError
        """
        self._refresh()
        settings = self._settings
        assert settings is not None
        context = check_features(context, name="context")
        rows = check_rows(candidate_rows, self.max_rows)
        slots = check_slots(n_slots, slots, len(rows))
        ids = {row.id for row in rows}
        for slot in slots:
            unknown = set(slot.excluded) - ids
            if unknown:
                raise InvalidInputError(f"slot {slot.id!r} excludes rows that are not "
                                        f"candidates: {sorted(unknown)}")
        rules = rules if rules is not None else (self.rules or PageRules())
        if not isinstance(rules, PageRules):
            raise InvalidInputError(f"rules must be PageRules, got {type(rules).__name__}")
        excluded = check_excluded(excluded, rows)
        event_id = check_event_id(event_id)
        mode = settings.learning_mode
        with self._rank_lock:
            ranker, version = self._ranker, self._ranker_version
            assert ranker is not None
            page = ranker.open_page(context, [row.features for row in rows],
                                    [slot.features for slot in slots], check_input=False)
            decided = decide_page(page, rows, slots, rules=rules, event_id=event_id,
                                  excluded=excluded, mode=mode)
        now = self.clock()
        line = _decision_line(event_id=event_id, timestamp=iso_timestamp(now),
                              version=str(version), context=context, rows=rows,
                              slots=slots, decided=decided, excluded=excluded,
                              rules=rules, mode=mode, extra=extra or {})
        self.store.insert_page(PendingEvent(
            event_id=event_id, created_at=now, deferred=bool(defer_activation),
            activated_at=None, decision=line),
            [slot.id for slot in slots])
        return PageDecision(
            event_id=event_id, model_version=str(version),
            slots=tuple(SlotDecision(slot_id=slot.id, row_id=rows[row].id,
                                     probability=float(pmf[eligible.index(row)]),
                                     n_eligible=len(eligible))
                        for slot, row, eligible, pmf in zip(
                            slots, decided.chosen, decided.eligible, decided.pmfs,
                            strict=True)))

    # -- outcomes --------------------------------------------------------------

    def reward_slots(self, event_id: str, rewards: Mapping[str, float] | Sequence[
            tuple[str, float]]) -> bool:
        """Record rewards of some slots of a page (all or none).

        Parameters
        ----------
        rewards : mapping of slot id to float, or sequence of (slot_id, value)

        Returns
        -------
        bool
            True when they came after the page was joined (late).
        """
        pairs = list(rewards.items()) if isinstance(rewards, Mapping) else list(rewards)
        if not pairs:
            raise InvalidInputError("rewards must name at least one slot")
        checked = []
        for pair in pairs:
            if not isinstance(pair, tuple | list) or len(pair) != 2 or not isinstance(
                    pair[0], str):
                raise InvalidInputError(f"each reward must be (slot_id, value), got {pair!r}")
            checked.append((pair[0], check_reward(pair[1])))
        return self.store.add_slot_rewards(check_event_id(event_id), checked, self.clock())

    def reward_slot(self, event_id: str, slot_id: str, value: float) -> bool:
        """Record the reward of one slot (a play from that row); True if late."""
        return self.reward_slots(event_id, [(slot_id, value)])

    def reward_page(self, event_id: str, value: float) -> bool:
        """Record a reward of the whole page (logged as ``pageReward``); True if late."""
        return self.store.add_reward(check_event_id(event_id), check_reward(value),
                                     self.clock())

    def activate(self, event_id: str) -> bool:
        """Mark a deferred page as shown; returns True if it came too late to count."""
        return self.store.activate(check_event_id(event_id), self.clock())

    # -- the learner -------------------------------------------------------------

    def _join(self, events: list[PendingEvent], rewards: dict[str, list[RewardRecord]],
              settings: LoopSettings) -> list[JoinedLine]:
        slot_rewards = self.store.slot_rewards([event.event_id for event in events])
        return [joined_page_line(event, rewards.get(event.event_id, []),
                                 slot_rewards.get(event.event_id, {}), settings)
                for event in events]


# ------------------------------------------------------------------------ the log


def _decision_line(*, event_id: str, timestamp: str, version: str, context: Features,
                   rows: Sequence[Row], slots: Sequence[Slot], decided: DecidedPage,
                   excluded: set[str], rules: PageRules, mode: str, extra: dict) -> str:
    ccb_slots = []
    for slot, row, eligible, pmf in zip(slots, decided.chosen, decided.eligible, decided.pmfs,
                                        strict=True):
        position = eligible.index(row)
        others = [i for i in np.argsort(-pmf, kind="stable") if i != position]
        order = [position, *others]
        ccb_slots.append(CcbSlot(slot.id, slot.features, list(eligible),
                                 [int(eligible[i]) for i in order],
                                 [float(pmf[i]) for i in order]))
    info: dict = {"rowIds": [row.id for row in rows], "slotIds": [slot.id for slot in slots],
                  "genres": [row.genre for row in rows], **extra}
    if any(slot.baseline is not None for slot in slots):
        info["baselineRowIds"] = [slot.baseline for slot in slots]
    if excluded:
        info["excludedRowIds"] = [row.id for row in rows if row.id in excluded]
    if rules != PageRules():
        info["rules"] = rules.to_dict()
    if mode != "online":
        info["learningMode"] = mode
        if decided.model_agrees is not None:
            info["modelAgreesWithBaseline"] = decided.model_agrees
    return ccb_decision_line(event_id, timestamp, version, context,
                             [row.features for row in rows], ccb_slots, info)
