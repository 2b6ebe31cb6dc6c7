"""The page join: the foundation's join rules applied to each slot and to the page.

The page's counterpart of :mod:`banditkit.join`; the joined line is written by
the codec, :func:`banditkit.dsjson.joined_ccb_line`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from banditkit.dsjson import CcbSlotJoin, JoinedLine, ccb_slot_ids, joined_ccb_line
from banditkit.eventlog import iso_timestamp
from banditkit.join import JoinOutcome, join_event
from banditkit.settings import LoopSettings
from banditkit.store import PendingEvent, RewardRecord

__all__ = ["join_page", "joined_page_line"]


def join_page(event: PendingEvent, page_rewards: Sequence[RewardRecord],
              slot_rewards: Mapping[str, Sequence[RewardRecord]],
              settings: LoopSettings) -> tuple[dict[str, JoinOutcome], JoinOutcome]:
    """The foundation's join rules, applied to each slot and to the page.

    Returns
    -------
    per_slot : dict of slot id to JoinOutcome
    page : JoinOutcome
        Of the page-level rewards (its ``reward`` is the default when none came).
    """
    slot_ids = ccb_slot_ids(event.decision)
    per_slot = {slot: join_event(event, list(slot_rewards.get(slot, ())), settings)
                for slot in slot_ids}
    return per_slot, join_event(event, list(page_rewards), settings)


def joined_page_line(event: PendingEvent, page_rewards: Sequence[RewardRecord],
                     slot_rewards: Mapping[str, Sequence[RewardRecord]],
                     settings: LoopSettings) -> JoinedLine:
    """The CCB dsjson line of a joined page, as ``(timestamp, line)``.

    Each slot's outcome gets ``_label_cost`` = minus its joined reward and
    ``_o``, the rewards that counted; the page reward goes to
    ``_banditkit.pageReward``.
    """
    per_slot, page = join_page(event, page_rewards, slot_rewards, settings)
    return joined_ccb_line(
        event.decision,
        {slot: CcbSlotJoin(j.reward, j.used_default, _reward_records(j.counted),
                           _reward_records(j.ignored)) for slot, j in per_slot.items()},
        deferred=event.deferred,
        activated_at=None if event.activated_at is None else iso_timestamp(event.activated_at),
        skip_learn=page.skip_learn, page_reward=page.reward,
        page_used_default=page.used_default, page_ignored=_reward_records(page.ignored))


def _reward_records(rewards: Sequence[RewardRecord]) -> list[dict]:
    return [{"v": r.value, "t": iso_timestamp(r.received_at)} for r in rewards]
