"""A simulated homepage whose ground truth is known exactly.

Members scan the page top-down. Under the **position-based model** (PBM) a
member examines slot ``k`` with probability :math:`e_k = (1 + k)^{-\\eta}`
and, having examined it, plays from row :math:`r` with its attraction
:math:`\\alpha(m, r)`; slots are independent given the page, so the expected
plays of a page are :math:`\\sum_k e_k\\, \\alpha(m, r_k)`. Under the
**cascade model** the member examines slots in order and stops at the first
play: slot ``k`` is played with :math:`\\alpha_k \\prod_{j<k} (1 - \\alpha_j)`
(with :math:`\\alpha_k = e_k \\alpha(m, r_k)`), so a page earns at most one play.

Members come in a finite set of types (favourite genre, second genre, device),
drawn uniformly, so the true value of a deterministic page policy is an exact
average over types, and that of a stochastic one an exact average of exact
page values over its sampled pages.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from banditkit.rows import PageRules, Row, Slot, decide_page, default_slots
from banditkit.rows.learner import OpenPage, PageLearner

__all__ = [
    "CLICK_MODELS",
    "GENRES",
    "RowWorld",
    "SoftmaxPage",
    "UniformPage",
    "editorial_slots",
    "greedy_page",
    "policy_value",
    "slot_marginals",
]

GENRES = ("comedy", "drama", "action", "horror", "romance", "documentary", "kids", "thriller")
GENERAL_ROWS = ("trending", "top10", "new_releases", "award_winners")
DEVICES = ("tv", "mobile", "web")
CLICK_MODELS = ("pbm", "cascade")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True, eq=False)
class RowWorld:
    """Member types x candidate rows with exact play probabilities.

    Build one with :meth:`generate`.

    Attributes
    ----------
    genres : tuple of str, length n_genres
    member_types : ndarray of shape (n_types, 3), dtype int
        Favourite genre, second genre (indices into ``genres``), device (into ``DEVICES``).
    rows : tuple of Row, length n_rows
        Candidate rows, in editorial order (general rows first, then genre rows).
    row_genre : ndarray of shape (n_rows,), dtype int
        Genre index of each row, -1 for general rows.
    attraction : ndarray of shape (n_types, n_rows)
        :math:`\\alpha(m, r)`, play probability of an examined row.
    eta : float
        Examination decay, :math:`e_k = (1 + k)^{-\\eta}`.
    click_model : {"pbm", "cascade"}
    """

    genres: tuple[str, ...]
    member_types: np.ndarray
    rows: tuple[Row, ...]
    row_genre: np.ndarray
    attraction: np.ndarray
    eta: float
    click_model: str

    @classmethod
    def generate(cls, *, seed: int, n_genres: int = 8, rows_per_genre: int = 2,
                 n_general: int = 4, eta: float = 1.0, click_model: str = "pbm") -> RowWorld:
        """A world with ``n_genres * rows_per_genre + n_general`` candidate rows.

        Parameters
        ----------
        seed : int
            Seeds the row qualities.
        n_genres : int, default=8
            At most ``len(GENRES)``.
        rows_per_genre : int, default=2
            A genre row ("Comedies") then "Because you watched ..." rows.
        n_general : int, default=4
            Rows without a genre (trending, top 10, ...), at most 4.
        eta : float, default=1.0
            Examination decay of the position-based model.
        click_model : {"pbm", "cascade"}, default="pbm"
        """
        if click_model not in CLICK_MODELS:
            raise ValueError(f"click_model must be one of {CLICK_MODELS}, got {click_model!r}")
        if not 1 <= n_genres <= len(GENRES) or not 0 <= n_general <= len(GENERAL_ROWS):
            raise ValueError(f"n_genres must be in [1, {len(GENRES)}] and n_general in "
                             f"[0, {len(GENERAL_ROWS)}], got {n_genres} and {n_general}")
        rng = np.random.default_rng(seed)
        genres = GENRES[:n_genres]
        rows: list[Row] = []
        row_genre: list[int] = []
        base: list[float] = []
        kind: list[str] = []
        for name in GENERAL_ROWS[:n_general]:
            rows.append(Row(id=name, features={"Row": {"kind": name, "genre": "none"}}))
            row_genre.append(-1)
            base.append(-1.2 + 0.3 * rng.standard_normal())
            kind.append("general")
        for g, genre in enumerate(genres):
            for j in range(rows_per_genre):
                row_kind = "genre" if j == 0 else "because_you_watched"
                rows.append(Row(id=f"{genre}-{j}", genre=genre,
                                features={"Row": {"kind": row_kind, "genre": genre,
                                                  "freshness": round(float(rng.uniform()), 2)}}))
                row_genre.append(g)
                base.append(-3.2 + 0.3 * rng.standard_normal())
                kind.append(row_kind)
        types = np.array([(f, s, d) for f in range(n_genres) for s in range(n_genres)
                          for d in range(len(DEVICES)) if s != f or n_genres == 1])
        row_genre_arr = np.array(row_genre)
        logit = np.array(base)[None, :].repeat(len(types), axis=0)
        favourite = row_genre_arr[None, :] == types[:, :1]
        second = row_genre_arr[None, :] == types[:, 1:2]
        because = np.array([k == "because_you_watched" for k in kind])[None, :]
        logit += 2.8 * favourite + 1.4 * second + 0.6 * (favourite & because)
        if "kids" in genres:
            kids = row_genre_arr == genres.index("kids")
            logit += 0.8 * (kids[None, :] & (types[:, 2:3] == DEVICES.index("tv")))
        return cls(genres=tuple(genres), member_types=types, rows=tuple(rows),
                   row_genre=row_genre_arr, attraction=_sigmoid(logit), eta=float(eta),
                   click_model=click_model)

    @property
    def n_types(self) -> int:
        return len(self.member_types)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def context(self, member: int) -> dict[str, dict[str, str]]:
        """Context features of a member type (what the member's history reveals)."""
        favourite, second, device = self.member_types[member]
        return {"Member": {"favourite": self.genres[favourite], "second": self.genres[second],
                           "device": DEVICES[device]}}

    def sample_members(self, n: int, *, seed: int) -> np.ndarray:
        """``n`` member types drawn uniformly; shape (n,)."""
        return np.random.default_rng(seed).integers(self.n_types, size=n)

    def examination(self, n_slots: int) -> np.ndarray:
        """:math:`e_k` for ``k = 0..n_slots-1``."""
        return (1.0 + np.arange(n_slots)) ** -self.eta

    def slot_play_probability(self, member: int, page: Sequence[int]) -> np.ndarray:
        """Exact probability of a play from each slot of a page; shape (n_slots,).

        Parameters
        ----------
        page : sequence of int
            Row indices, top to bottom.
        """
        alpha = self.examination(len(page)) * self.attraction[member, list(page)]
        if self.click_model == "pbm":
            return alpha
        not_yet = np.concatenate(([1.0], np.cumprod(1.0 - alpha)[:-1]))
        return alpha * not_yet

    def page_value(self, member: int, page: Sequence[int]) -> float:
        """Expected plays of a page (its true value)."""
        return float(self.slot_play_probability(member, page).sum())

    def sample_plays(self, member: int, page: Sequence[int],
                     rng: np.random.Generator) -> np.ndarray:
        """Plays per slot (0 or 1), drawn from the click model; shape (n_slots,)."""
        alpha = self.examination(len(page)) * self.attraction[member, list(page)]
        plays = (rng.random(len(page)) < alpha).astype(float)
        if self.click_model == "cascade" and plays.any():
            first = int(np.argmax(plays))
            plays[first + 1:] = 0.0
        return plays

    def row_index(self, row_id: str) -> int:
        return [row.id for row in self.rows].index(row_id)


def editorial_slots(world: RowWorld, n_slots: int) -> list[Slot]:
    """Default slots whose baselines follow the editorial order (the rows' own order)."""
    return [Slot(id=slot.id, features=slot.features, baseline=world.rows[k].id)
            for k, slot in enumerate(default_slots(n_slots))]


class UniformPage(OpenPage):
    """Every allowed row equally likely (random pages that respect the rules)."""

    def _slot_pmf(self, slot: int, included: list[int], chosen_above: list[int]) -> np.ndarray:
        return np.full(len(included), 1.0 / len(included))


class SoftmaxPage(OpenPage):
    """Softmax of fixed row scores over the allowed rows (a known stochastic policy).

    Parameters
    ----------
    scores : ndarray of shape (n_actions,)
    temperature : float
    """

    def __init__(self, *, scores: np.ndarray, temperature: float, n_slots: int) -> None:
        super().__init__(n_actions=len(scores), n_slots=n_slots)
        self.scores = np.asarray(scores, dtype=float)
        self.temperature = temperature

    def _slot_pmf(self, slot: int, included: list[int], chosen_above: list[int]) -> np.ndarray:
        z = self.scores[included] / self.temperature
        z = np.exp(z - z.max())
        return z / z.sum()


class _GreedyPage(OpenPage):
    def __init__(self, inner: OpenPage) -> None:
        super().__init__(n_actions=inner.n_actions, n_slots=inner.n_slots)
        self.inner = inner

    def _slot_pmf(self, slot: int, included: list[int], chosen_above: list[int]) -> np.ndarray:
        pmf = self.inner.slot_pmf(slot, included, chosen_above)
        out = np.zeros(len(included))
        out[int(np.argmax(pmf))] = 1.0
        return out


def greedy_page(world: RowWorld, learner: PageLearner, member: int, n_slots: int,
                rules: PageRules) -> list[int]:
    """The learner's page without exploration: the top row of each slot."""
    page = learner.open_page(world.context(member), [r.features for r in world.rows],
                             [s.features for s in default_slots(n_slots)])
    decided = decide_page(_GreedyPage(page), world.rows, default_slots(n_slots), rules=rules,
                          event_id="greedy")
    return decided.chosen


def policy_value(world: RowWorld, page_of: Callable[[int], Sequence[int]], *,
                 members: Sequence[int] | None = None) -> float:
    """Mean true page value of a deterministic page policy over member types.

    Parameters
    ----------
    page_of : callable
        Member type to its page (row indices).
    members : sequence of int, default=None
        Types to average over; None means every type (the exact value).
    """
    members = range(world.n_types) if members is None else members
    return float(np.mean([world.page_value(m, page_of(m)) for m in members]))


def slot_marginals(page: OpenPage, *, n_rows: int, n_slots: int,
                   max_prefixes: int = 20_000) -> np.ndarray:
    """Exact probability that each row lands in each slot, by enumerating prefixes.

    Pages without rules only (every row not placed above is allowed); for
    small pages, as OPE tests need.

    Parameters
    ----------
    page : OpenPage
        The policy on one context.
    n_rows, n_slots : int
    max_prefixes : int, default=20000
        Refuse larger enumerations.

    Returns
    -------
    ndarray of shape (n_slots, n_rows)
    """
    marginal = np.zeros((n_slots, n_rows))
    frontier: list[tuple[list[int], float]] = [([], 1.0)]
    visited = 0
    for slot in range(n_slots):
        nxt: list[tuple[list[int], float]] = []
        for prefix, mass in frontier:
            included = [i for i in range(n_rows) if i not in prefix]
            pmf = page.slot_pmf(slot, included, prefix)
            for row, p in zip(included, pmf, strict=True):
                if p > 0:
                    marginal[slot, row] += mass * p
                    nxt.append(([*prefix, row], mass * p))
            visited += len(included)
            if visited > max_prefixes:
                raise ValueError(f"more than max_prefixes={max_prefixes} partial pages")
        frontier = nxt
    return marginal


def all_pages(n_rows: int, n_slots: int) -> list[tuple[int, ...]]:
    """Every ordered page of distinct rows (for exact checks on tiny worlds)."""
    return list(itertools.permutations(range(n_rows), n_slots))
