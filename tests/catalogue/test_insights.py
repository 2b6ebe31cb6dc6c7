"""Who likes which variant: the propensity-weighted breakdown on a log whose truth is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from banditkit.dsjson import decision_head, decision_line, dsjson_context, joined_line_text
from banditkit.encoding import compact_json
from banditkit.errors import InvalidInputError
from banditkit.eventlog import iso_timestamp
from banditkit.types import Action
from catalogue.insights import UnknownFeatureError, title_insights
from catalogue.performance import wilson_bounds, wilson_interval

VARIANTS = ("v1", "v2")
START = 1.7e9
# Each country's take rate per variant, averaged over devices (half tv, half phone):
# country A prefers v1 and country B v2. A television adds DEVICE_EFFECT to every
# take probability and a phone takes it away.
TRUTH = {("A", "v1"): 0.35, ("A", "v2"): 0.20, ("B", "v1"): 0.18, ("B", "v2"): 0.30}
DEVICE_EFFECT = 0.15
# The logging policy favours v1 on televisions and v2 on phones, whatever the country.
P_V1 = {"tv": 0.8, "phone": 0.2}
N_ROUNDS = 20_000


def joined_line(event_id, at, context, chosen, p_v1, take, *, title="t1"):
    """A joined dsjson line written by the decision record's own writers."""
    actions = [Action(id=v, features={"Variant": {"id": v}}) for v in VARIANTS]
    pmf = [p_v1, 1.0 - p_v1]
    head = decision_head(event_id, iso_timestamp(at), 1, [chosen, 1 - chosen], pmf, actions,
                         {"title": title, "variantIds": list(VARIANTS)})
    decision = decision_line(head, compact_json(dsjson_context(
        context, [a.features for a in actions])))
    return joined_line_text(decision, len(head), 1.0 if take else 0.0, [], [], False, False,
                            not take).line


def simulated_log(seed=0, n_rounds=N_ROUNDS):
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n_rounds):
        country = "A" if rng.random() < 0.5 else "B"
        device = "tv" if rng.random() < 0.5 else "phone"
        p_v1 = P_V1[device]
        chosen = 0 if rng.random() < p_v1 else 1
        rate = TRUTH[country, VARIANTS[chosen]] + (DEVICE_EFFECT if device == "tv"
                                                    else -DEVICE_EFFECT)
        context = {"Member": {"country": country, "device": device},
                   "Taste": {"comedy": float(rng.random())}}
        lines.append(joined_line(f"e{i}", START + i, context, chosen, p_v1,
                                 rng.random() < rate))
    return lines


@pytest.fixture(scope="module")
def log():
    return simulated_log()


def cells(report):
    return {(s.segment, v.variant_id): v for s in report.segments for v in s.variants}


def test_the_weighted_rates_recover_each_segments_truth_where_raw_rates_mislead(log) -> None:
    report = title_insights(log, title_id="t1", feature="Member.country", since=START - 1,
                            variant_ids=VARIANTS, confidence=0.999)
    assert report.features == ["Member.country", "Member.device", "Taste.comedy"]
    assert report.decisions == N_ROUNDS
    assert [s.segment for s in report.segments] == ["A", "B"]
    # Within a (country, variant) cell of ~5000 impressions, 80% come from the
    # device the policy favours it on: weights 1.25 there and 5 on the other,
    # so n_e = (4000*1.25 + 1000*5)^2 / (4000*1.25^2 + 1000*5^2) = 3200 and
    # the standard error is at most sqrt(0.25 / 3200) = 0.0088; 4 of them: 0.035.
    # The raw rate is off by DEVICE_EFFECT * (0.8 - 0.2) = 0.09 towards the
    # favoured device, with a standard error under sqrt(0.25 / 5000) = 0.007.
    for (country, variant), truth in TRUTH.items():
        cell = cells(report)[country, variant]
        assert cell.effective_size == pytest.approx(3200, rel=0.1)
        assert cell.take_rate == pytest.approx(truth, abs=0.035)
        assert cell.take_rate_low <= truth <= cell.take_rate_high  # a 99.9% interval
        bias = DEVICE_EFFECT * (0.8 - 0.2) * (1 if variant == "v1" else -1)
        assert cell.raw_take_rate == pytest.approx(truth + bias, abs=0.03)
        assert abs(cell.raw_take_rate - truth) > 0.06
    # The weighted rates name each country's favourite; the raw rates get B wrong.
    b = {v: cells(report)["B", v] for v in VARIANTS}
    assert b["v2"].take_rate > b["v1"].take_rate
    assert b["v1"].raw_take_rate > b["v2"].raw_take_rate


def test_counts_weights_and_interval_by_hand() -> None:
    # Two tv decisions for v1 (p = 0.8, one take) and one phone decision for v1 (p = 0.2, a take).
    lines = [joined_line("a", START + 1, {"Member": {"device": "tv"}}, 0, 0.8, True),
             joined_line("b", START + 2, {"Member": {"device": "tv"}}, 0, 0.8, False),
             joined_line("c", START + 3, {"Member": {"device": "phone"}}, 0, 0.2, True),
             joined_line("d", START + 4, {"Member": {"device": "phone"}}, 0, 0.2, True,
                         title="other")]
    report = title_insights(lines, title_id="t1", feature="Member.device", since=START,
                            variant_ids=VARIANTS)
    assert report.decisions == 3
    phone, tv = report.segments
    assert (phone.segment, phone.decisions, tv.segment, tv.decisions) == ("phone", 1, "tv", 2)
    v1 = tv.variants[0]
    assert (v1.impressions, v1.takes, v1.raw_take_rate) == (2, 1, 0.5)
    assert v1.take_rate == pytest.approx(0.5)  # equal weights: the raw rate
    assert v1.effective_size == pytest.approx(2.0)
    assert (v1.take_rate_low, v1.take_rate_high) == pytest.approx(wilson_interval(1, 2))
    assert tv.variants[1].impressions == 0 and tv.variants[1].take_rate is None
    # A window that starts after the first decision leaves it out.
    later = title_insights(lines, title_id="t1", feature="Member.device", since=START + 1.5)
    assert later.decisions == 2


def test_numeric_features_split_at_the_median(log) -> None:
    report = title_insights(log, title_id="t1", feature="Taste.comedy", since=START - 1)
    assert len(report.segments) == 2
    low, high = report.segments
    assert low.segment.startswith("<= ") and high.segment.startswith("> ")
    assert low.decisions == high.decisions == N_ROUNDS // 2


def test_an_unknown_feature_names_the_available_ones(log) -> None:
    with pytest.raises(UnknownFeatureError, match="'Member.age'") as caught:
        title_insights(log[:10], title_id="t1", feature="Member.age", since=START - 1)
    assert caught.value.available == ["Member.country", "Member.device", "Taste.comedy"]
    assert "'Member.device'" in str(caught.value)
    listed = title_insights(log[:10], title_id="t1", feature=None, since=START - 1)
    assert listed.segments == [] and listed.decisions == 10


def test_wilson_bounds_on_a_real_size() -> None:
    assert wilson_bounds(0.3, 100) == pytest.approx(wilson_interval(30, 100))
    low, high = wilson_bounds(0.3, 50.5)
    assert low < 0.3 < high and high - low > wilson_bounds(0.3, 100)[1] - wilson_bounds(
        0.3, 100)[0]
    assert wilson_bounds(0.5, 0) == (0.0, 1.0)
    for args in ((1.2, 10), (0.5, -1), (0.5, math.inf)):
        with pytest.raises(InvalidInputError):
            wilson_bounds(*args)
    assert json.dumps(list(wilson_bounds(0.0, 3.5)))  # finite numbers
