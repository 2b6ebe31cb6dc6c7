"""Page rules (and per-slot exclusions): never violated, and exactly the completable rows
are eligible, checked against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from banditkit.errors import InvalidInputError
from banditkit.rows import PageRules, Row, Slot, decide_page, default_slots, page_violations
from simulator.rows_world import SoftmaxPage, UniformPage

GENRE_POOL = ["a", "b", "c", None]


@st.composite
def pages(draw):
    n_rows = draw(st.integers(2, 7))
    genres = draw(st.lists(st.sampled_from(GENRE_POOL), min_size=n_rows, max_size=n_rows))
    rows = [Row(id=f"r{i}", features={"Row": {"g": str(g)}}, genre=g)
            for i, g in enumerate(genres)]
    n_slots = draw(st.integers(1, n_rows))
    pinned = {}
    if draw(st.booleans()):
        pinned[f"r{draw(st.integers(0, n_rows - 1))}"] = draw(st.integers(1, n_slots + 1))
    rules = PageRules(pinned=pinned, no_adjacent_same_genre=draw(st.booleans()),
                      min_distinct_genres=draw(st.integers(0, 3)),
                      distinct_genres_within=draw(st.integers(0, n_slots)))
    excluded = {r.id for r in rows if draw(st.booleans()) and draw(st.booleans())}
    slot_excluded = draw(st.booleans())
    slots = [Slot(id=s.id, features=s.features, excluded=tuple(
        r.id for r in rows if slot_excluded and draw(st.integers(0, 3)) == 0))
        for s in default_slots(n_slots)]
    scores = np.array(draw(st.lists(st.floats(-3, 3), min_size=n_rows, max_size=n_rows)))
    event = draw(st.text(min_size=1, max_size=8))
    return rows, slots, rules, excluded, scores, event


def _valid_pages(rows, slots, rules, excluded):
    ids = [r.id for r in rows]
    return [page for page in itertools.permutations(ids, len(slots))
            if not page_violations(rows, page, rules, excluded=excluded, slots=slots)]


@pytest.mark.slow  # 300 generated pages
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_rules_hold_and_eligibility_is_exactly_the_completable_rows(case):
    rows, slots, rules, excluded, scores, event = case
    n_slots = len(slots)
    note(f"genres={[r.genre for r in rows]} slots={slots} rules={rules} "
         f"excluded={sorted(excluded)}")
    valid = _valid_pages(rows, slots, rules, excluded)
    page = SoftmaxPage(scores=scores, temperature=1.0, n_slots=n_slots)
    if not valid:
        with pytest.raises(InvalidInputError):
            decide_page(page, rows, slots, rules=rules, event_id=event, excluded=excluded)
        return
    decided = decide_page(page, rows, slots, rules=rules, event_id=event, excluded=excluded)
    chosen = [rows[i].id for i in decided.chosen]
    assert page_violations(rows, chosen, rules, excluded=excluded, slots=slots) == []
    # At every slot the eligible rows are exactly those some valid page puts
    # there after the rows already placed: rules never block a completable row,
    # never allow a dead end.
    for slot in range(n_slots):
        prefix = tuple(chosen[:slot])
        completable = {p[slot] for p in valid if p[:slot] == prefix}
        assert {rows[i].id for i in decided.eligible[slot]} == completable
        pmf = decided.pmfs[slot]
        assert pmf.sum() == pytest.approx(1.0) and (pmf > 0).all()


def test_pinned_row_takes_its_slot_with_probability_one():
    rows = [Row(id=f"r{i}", features={"Row": {"i": str(i)}}, genre="ab"[i % 2])
            for i in range(6)]
    rules = PageRules(pinned={"r5": 1}, no_adjacent_same_genre=True)
    for event in range(50):
        decided = decide_page(UniformPage(n_actions=6, n_slots=4), rows, default_slots(4),
                              rules=rules, event_id=str(event))
        assert decided.chosen[0] == 5
        assert decided.pmfs[0].tolist() == [1.0]
        genres = [rows[i].genre for i in decided.chosen]
        assert all(x != y for x, y in zip(genres, genres[1:], strict=False))


def test_impossible_rules_name_the_problem():
    rows = [Row(id=f"r{i}", features={}, genre="a") for i in range(4)]
    with pytest.raises(InvalidInputError, match="no page of 2 slots satisfies"):
        decide_page(UniformPage(n_actions=4, n_slots=2), rows, default_slots(2),
                    rules=PageRules(no_adjacent_same_genre=True), event_id="x")
    with pytest.raises(InvalidInputError, match="both claim slot 1"):
        PageRules(pinned={"r0": 1, "r1": 1})


def test_large_page_is_fast_and_valid():
    # 60 candidates over 12 genres (plus 6 without genre), 20 slots, every rule.
    rng = np.random.default_rng(0)
    genres = [f"g{i % 12}" for i in range(54)] + [None] * 6
    rows = [Row(id=f"r{i}", features={}, genre=g) for i, g in enumerate(genres)]
    rules = PageRules(pinned={"r59": 1}, no_adjacent_same_genre=True, min_distinct_genres=5,
                      distinct_genres_within=6)
    excluded = {f"r{i}" for i in rng.choice(59, 5, replace=False)}
    for event in range(20):
        decided = decide_page(UniformPage(n_actions=60, n_slots=20), rows,
                              default_slots(20), rules=rules, event_id=str(event),
                              excluded=excluded)
        page = [rows[i].id for i in decided.chosen]
        assert page_violations(rows, page, rules, excluded=excluded) == []


def test_large_page_with_slot_exclusions_is_valid():
    # The same page with three rows excluded from each slot: rows of one genre
    # are no longer interchangeable, and every rule still holds.
    rng = np.random.default_rng(1)
    genres = [f"g{i % 12}" for i in range(54)] + [None] * 6
    rows = [Row(id=f"r{i}", features={}, genre=g) for i, g in enumerate(genres)]
    rules = PageRules(pinned={"r59": 1}, no_adjacent_same_genre=True, min_distinct_genres=5,
                      distinct_genres_within=6)
    slots = [Slot(id=s.id, features=s.features,
                  excluded=tuple(f"r{i}" for i in rng.choice(59, 3, replace=False)))
             for s in default_slots(20)]
    for event in range(10):
        decided = decide_page(UniformPage(n_actions=60, n_slots=20), rows, slots,
                              rules=rules, event_id=str(event))
        page = [rows[i].id for i in decided.chosen]
        assert page_violations(rows, page, rules, slots=slots) == []
