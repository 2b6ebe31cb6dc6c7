"""Bounded insertion-ordered dicts: never past the limit, the newest entries kept."""

from banditkit.bounded import drop_older_half


def test_a_dict_within_its_limit_is_left_alone():
    entries = dict.fromkeys(range(8))
    drop_older_half(entries, 8)
    assert list(entries) == list(range(8))


def test_past_the_limit_the_newest_half_stays_in_order():
    entries: dict = {}
    for key in range(1000):
        entries[key] = None
        drop_older_half(entries, 100)
        assert len(entries) <= 100
    assert 50 <= len(entries) <= 100
    assert list(entries) == list(range(1000 - len(entries), 1000))
