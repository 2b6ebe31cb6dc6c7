"""LoggedRounds / TargetRounds: validation, chunking, concatenation, dense compression."""

import numpy as np
import pytest

from ope.rounds import LoggedRounds, TargetRounds, iter_chunks


def make_rounds(n=10, seed=0, n_actions=3):
    rng = np.random.default_rng(seed)
    return LoggedRounds(reward=rng.random(n), action=rng.integers(n_actions, size=n),
                        probability=np.full(n, 1 / n_actions), n_actions=n_actions,
                        round_id=np.array([f"e{i}" for i in range(n)]))


def test_scalar_n_actions_broadcasts_and_arrays_are_read_only():
    rounds = make_rounds(5)
    assert rounds.n_actions.tolist() == [3] * 5
    assert len(rounds) == rounds.n_rounds == 5
    with pytest.raises(ValueError):
        rounds.reward[0] = 2.0


def test_freezing_does_not_touch_the_callers_array():
    reward = np.ones(3)
    LoggedRounds(reward=reward, action=[0, 1, 0], probability=[0.5] * 3, n_actions=2)
    reward[0] = 5.0  # still writable


def test_only_arrays_nothing_can_write_are_kept_without_a_copy():
    import pyarrow as pa

    immutable = np.from_dlpack(pa.array([1.0, 0.0, 1.0]))  # pyarrow's buffer, read-only
    base = np.ones(3)
    view = base.view()
    view.setflags(write=False)  # read-only, but base still writes through
    rounds = LoggedRounds(reward=immutable, action=[0, 1, 0], probability=view, n_actions=2)
    assert rounds.reward is immutable
    assert rounds.probability is not view
    base[0] = 0.25
    assert rounds.probability.tolist() == [1.0, 1.0, 1.0]


def test_ragged_action_counts_are_allowed():
    rounds = LoggedRounds(reward=[1, 0], action=[4, 1], probability=[0.2, 0.5],
                          n_actions=[5, 2])
    assert rounds.n_actions.tolist() == [5, 2]


@pytest.mark.parametrize(("changes", "message"), [
    ({"probability": [0.5, 0.0, 0.5]}, r"probability must be in \(0, 1\], got 0.0 at position 1"),
    ({"probability": [0.5, 1.5, 0.5]}, r"probability must be in \(0, 1\], got 1.5"),
    ({"probability": [0.5, np.nan, 0.5]}, r"probability must be finite"),
    ({"reward": [1.0, np.nan, 0.0]}, r"reward must be finite, got nan at position 1"),
    ({"reward": [1.0, np.inf, 0.0]}, r"reward must be finite"),
    ({"action": [0, 1]}, r"action must have length n_rounds=3, got 2"),
    ({"probability": [0.5, 0.5]}, r"probability must have length n_rounds=3, got 2"),
    ({"action": [0, 2, 0]}, r"action must be in \[0, n_actions\), got action=2 with n_actions=2"),
    ({"action": [0, -1, 0]}, r"action must be in \[0, n_actions\)"),
    ({"action": [0, 0.5, 0]}, r"action must hold integers"),
    ({"n_actions": 0}, r"n_actions must be >= 1, got 0"),
    ({"reward": [[1.0, 0.0, 1.0]]}, r"reward must be a 1-d array"),
    ({"round_id": ["a"]}, r"round_id must have length n_rounds=3, got 1"),
])
def test_bad_inputs_are_rejected_with_clear_messages(changes, message):
    arguments = {"reward": [1.0, 0.0, 1.0], "action": [0, 1, 0],
                 "probability": [0.5, 0.5, 0.5], "n_actions": 2}
    arguments.update(changes)
    with pytest.raises(ValueError, match=message):
        LoggedRounds(**arguments)


def test_empty_log_is_rejected():
    with pytest.raises(ValueError, match="at least one round, got an empty log"):
        LoggedRounds(reward=[], action=[], probability=[], n_actions=2)


def test_chunks_cover_the_log_in_order_and_know_their_position():
    rounds = make_rounds(10)
    chunks = list(rounds.chunks(4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [c.first_index for c in chunks] == [0, 4, 8]
    joined = LoggedRounds.concatenate(chunks)
    np.testing.assert_array_equal(joined.reward, rounds.reward)
    np.testing.assert_array_equal(joined.round_id, rounds.round_id)
    assert joined.first_index == 0


def test_concatenate_drops_optional_fields_missing_in_one_part():
    with_ids = make_rounds(3)
    without = LoggedRounds(reward=[1.0], action=[0], probability=[1.0], n_actions=1)
    joined = LoggedRounds.concatenate([with_ids, without])
    assert joined.round_id is None and len(joined) == 4
    with pytest.raises(ValueError, match="at least one"):
        LoggedRounds.concatenate([])


def test_iter_chunks_pairs_rounds_with_their_target_slice():
    rounds = make_rounds(7)
    target = TargetRounds(probability=np.linspace(0, 1, 7))
    pairs = list(iter_chunks(rounds, target, 3))
    assert [len(r) for r, _ in pairs] == [3, 3, 1]
    np.testing.assert_array_equal(pairs[1][1].probability, target.probability[3:6])
    with pytest.raises(ValueError, match="target must have length n_rounds=7, got 2"):
        list(iter_chunks(rounds, TargetRounds(probability=[0.1, 0.2]), 3))


def test_from_dense_compresses_to_per_round_scalars():
    rounds = LoggedRounds(reward=[1.0, 0.0], action=[1, 0], probability=[0.5, 0.5],
                          n_actions=[3, 2])
    dist = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    q = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 99.0]])  # 99 is outside round 2's actions
    logging = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    target = TargetRounds.from_dense(rounds, dist, model_predictions=q, logging_dist=logging)
    np.testing.assert_allclose(target.probability, [0.3, 1.0])
    np.testing.assert_allclose(target.model_reward, [0.2, 0.4])
    # 0.2*0.1 + 0.3*0.2 + 0.5*0.3 = 0.23 ; 1.0*0.4 = 0.4
    np.testing.assert_allclose(target.model_value, [0.23, 0.4])
    # round 1 puts 0.5 on action 2, which the logger never plays
    np.testing.assert_allclose(target.unsupported_mass, [0.5, 0.0])


@pytest.mark.parametrize(("dist", "message"), [
    (np.array([[0.5, 0.6], [1.0, 0.0]]), "rows must sum to 1"),
    (np.array([[0.5, 0.5]]), r"action_dist must have shape \(n_rounds=2"),
    (np.array([[1.2, -0.2], [1.0, 0.0]]), r"action_dist must be in \[0, 1\]"),
])
def test_from_dense_rejects_bad_distributions(dist, message):
    rounds = LoggedRounds(reward=[1.0, 0.0], action=[1, 0], probability=[0.5, 0.5], n_actions=2)
    with pytest.raises(ValueError, match=message):
        TargetRounds.from_dense(rounds, dist)


def test_from_dense_rejects_mass_outside_a_rounds_actions():
    rounds = LoggedRounds(reward=[1.0], action=[0], probability=[0.5], n_actions=[2])
    with pytest.raises(ValueError, match="positions >= n_actions"):
        TargetRounds.from_dense(rounds, np.array([[0.5, 0.0, 0.5]]))


def test_target_probability_must_be_a_probability():
    with pytest.raises(ValueError, match=r"target probability must be in \[0, 1\], got 1.5"):
        TargetRounds(probability=[0.5, 1.5])
    with pytest.raises(ValueError, match="model_value must have length n_rounds=2, got 1"):
        TargetRounds(probability=[0.5, 0.5], model_value=[0.1])
