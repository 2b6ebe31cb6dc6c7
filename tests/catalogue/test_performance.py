"""Per-variant performance over decisions made by a real engine, and the Wilson interval."""

from __future__ import annotations

import math

import pytest

from banditkit.engine import Engine, RankRequest
from banditkit.errors import InvalidInputError
from banditkit.settings import LoopSettings
from banditkit.types import Action
from catalogue.performance import title_performance, wilson_interval

DAY = 86400.0
Z = 1.959963984540054


@pytest.mark.parametrize("k, n, expected", [
    (0, 10, (0.0, Z * Z / (10 + Z * Z))),          # closed form at k = 0
    (10, 10, (10 / (10 + Z * Z), 1.0)),            # and at k = n
    (5, 10, (0.2365931, 0.7634069)),               # Wilson (1927) / Newcombe (1998) table
    (81, 263, (0.2553, 0.3662)),                   # Newcombe (1998), example (c)
])
def test_wilson_interval_matches_closed_forms(k, n, expected) -> None:
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected[0], abs=1e-4)
    assert high == pytest.approx(expected[1], abs=1e-4)


def test_wilson_interval_edges_and_errors() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow, wide = wilson_interval(30, 100, confidence=0.8), wilson_interval(30, 100)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]
    for args in ((3, 2), (-1, 2), (1, -1), (1.5, 2), (True, 2)):
        with pytest.raises(InvalidInputError):
            wilson_interval(*args)
    with pytest.raises(InvalidInputError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


@pytest.fixture
def engine(tmp_path, clock):
    settings = LoopSettings(reward_wait_seconds=60.0, model_update_seconds=0.0)
    engine = Engine.open(tmp_path, settings=settings, clock=clock)
    yield engine
    engine.close()


VARIANTS = ("va", "vb")


def show(engine, variant, *, title="t1", defer=False, reward=None, activate=False):
    """One decision forced onto ``variant`` (the other is excluded)."""
    actions = [Action(id=v, features={"Variant": {"id": v}}) for v in VARIANTS]
    decision = engine.rank_many([RankRequest(
        context={"Member": {"country": "BR"}}, actions=actions,
        excluded=[v for v in VARIANTS if v != variant], defer_activation=defer,
        extra={"title": title, "variantIds": list(VARIANTS)})])[0]
    assert decision.reward_action_id == variant
    if activate:
        engine.activate(decision.event_id)
    if reward is not None:
        engine.reward(decision.event_id, reward)
    return decision


def test_counts_takes_shares_and_days(engine, clock) -> None:
    clock.advance(3600)  # the fake clock starts at midnight; stay inside one UTC day
    start = clock.now
    # Day 1: va shown 3 times (2 takes, 1 default reward), vb once (reward 0: not a take).
    show(engine, "va", reward=1.0)
    show(engine, "va", reward=2.5)
    show(engine, "va")
    show(engine, "vb", reward=0.0)
    show(engine, "vb", defer=True)                   # never activated: not shown
    show(engine, "va", title="t2", reward=1.0)        # another title
    engine.rank(context={}, actions=[Action("x", {})])  # not an artwork decision
    clock.advance(DAY)
    # Day 2: vb shown twice (activated deferred take, plain take), then joined.
    show(engine, "vb", defer=True, activate=True, reward=1.0)
    show(engine, "vb", reward=1.0)
    clock.advance(120)
    engine.process_due()
    # Still day 2: one va decision whose reward window is open (not joined yet).
    show(engine, "va", reward=1.0)
    report = title_performance(engine.store.events_since(start - 1), title_id="t1",
                               since=start - 1, until=clock.now, variant_ids=["va", "vb", "vc"])
    by_id = {v.variant_id: v for v in report.variants}
    assert list(by_id) == ["va", "vb", "vc"]
    va, vb, vc = by_id["va"], by_id["vb"], by_id["vc"]
    assert (va.impressions, va.joined, va.takes) == (4, 3, 2)
    assert (vb.impressions, vb.joined, vb.takes) == (3, 3, 2)
    assert (vc.impressions, vc.joined, vc.takes, vc.share, vc.take_rate) == (0, 0, 0, 0.0, None)
    assert (report.impressions, report.joined, report.takes) == (7, 6, 4)
    assert va.share == pytest.approx(4 / 7) and vb.share == pytest.approx(3 / 7)
    assert va.take_rate == pytest.approx(2 / 3)
    assert (va.take_rate_low, va.take_rate_high) == pytest.approx(wilson_interval(2, 3))
    assert va.mean_reward == pytest.approx((1.0 + 2.5 + 0.0) / 3)
    assert len(report.days) == 2
    day1, day2 = va.daily
    assert (day1.impressions, day1.joined, day1.takes) == (3, 3, 2)
    assert day1.share == pytest.approx(3 / 4)
    assert (day2.impressions, day2.joined, day2.takes, day2.take_rate) == (1, 0, 0, None)
    assert day2.share == pytest.approx(1 / 3)
    assert vb.daily[1].take_rate == 1.0 and vb.daily[0].take_rate == 0.0
    # The last 24 hours: day 2's impressions (va once, vb twice), beside the whole window's.
    assert report.recent_since == pytest.approx(clock.now - DAY)
    assert report.recent_impressions == 3
    assert (va.recent_impressions, vb.recent_impressions, vc.recent_impressions) == (1, 2, 0)
    assert va.recent_share == pytest.approx(1 / 3) and vb.recent_share == pytest.approx(2 / 3)
    assert vc.recent_share == 0.0
    since_start = title_performance(engine.store.events_since(start - 1), title_id="t1",
                                    since=start - 1, until=clock.now, recent_since=start - 10)
    assert since_start.recent_impressions == since_start.impressions == 7


def test_the_window_and_the_threshold(engine, clock) -> None:
    start = clock.now
    show(engine, "va", reward=0.5)
    clock.advance(10 * DAY)
    show(engine, "vb", reward=2.0)
    clock.advance(120)
    engine.process_due()
    recent = title_performance(engine.store.events_since(start + DAY), title_id="t1",
                               since=start + DAY, until=clock.now)
    assert [v.variant_id for v in recent.variants] == ["vb"] and recent.impressions == 1
    assert len(recent.days) == 10
    strict = title_performance(engine.store.events_since(start - 1), title_id="t1",
                               since=start - 1, until=clock.now, take_threshold=1.0)
    assert {v.variant_id: v.takes for v in strict.variants} == {"va": 0, "vb": 1}
    with pytest.raises(InvalidInputError):
        title_performance([], title_id="t1", since=clock.now, until=clock.now - 1)
    with pytest.raises(InvalidInputError):
        title_performance([], title_id="t1", since=0.0, until=math.inf)
    with pytest.raises(InvalidInputError, match="recent_since"):
        title_performance([], title_id="t1", since=0.0, until=1.0, recent_since=math.nan)
    assert title_performance([], title_id="t1", since=0.0, until=1.0,
                             variant_ids=["va"]).variants[0].recent_share is None
