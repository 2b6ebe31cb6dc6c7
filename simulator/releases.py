r"""Titles that come and go: does what a poster shows carry over to new titles?

An :class:`~simulator.world.ArtworkWorld` (members' taste over themes drives
their takes) whose titles are released one after another: a few titles are
live at a time, each gets a fixed number of impressions, and when one has had
them the next is released. Every title is new when it arrives, so a learner
that knows each variant only by its id and image measurements starts from
scratch on each; one that also sees the variant's theme tags, as marketers
set them in a catalogue, carries taste x theme over from the titles before.

The variants' action features are those a catalogue gives a ranker: image
measurements (``Face.closeup``, ``Color.brightness``), the title's genres
(``Genre``), the variant id (``Variant``) and, when tagged, the tags
namespace (``Depicts``, ``{"theme=romance": 1.0}``, docs/marketer.md).

:func:`run_releases` lets a learner learn online through the releases and
records, for every impression, the title's age (impressions it had before)
and the exact expected take of the pmf played, as :mod:`simulator.online` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from banditkit.vw import VWLearner
from simulator.world import THEMES, ArtworkWorld

__all__ = ["RELEASE_POLICY_ARGS", "ReleaseRun", "ReleaseWorld", "TAGS_NAMESPACE",
           "TaggingComparison", "compare_tagging", "run_releases"]

#: The namespace of a variant's tags, as the catalogue names it for ranking.
TAGS_NAMESPACE = "Depicts"

#: Taste x tags (``TD``) and Taste x variant (``TV``) carry the personalization;
#: Member x Face and Member x Color the device effects. A learner without tags
#: has no ``D`` namespace, so the same arguments serve both.
RELEASE_POLICY_ARGS = "--cb_explore_adf --cb_type mtr -q TD -q TV -q MF -q MC --epsilon 0.1"


@dataclass(frozen=True, eq=False)
class ReleaseWorld:
    """An artwork world whose titles are released one after another.

    Build one with :meth:`generate`.

    Attributes
    ----------
    world : ArtworkWorld
        Members, titles and variants with their exact take probabilities.
    impressions_per_title : int
        Impressions each title gets before it leaves.
    live_titles : int
        Titles live at a time.
    """

    world: ArtworkWorld
    impressions_per_title: int
    live_titles: int

    @classmethod
    def generate(cls, *, seed: int, n_titles: int = 32, impressions_per_title: int = 150,
                 live_titles: int = 6, n_members: int = 2000, n_variants: int = 4,
                 n_themes: int = 4) -> ReleaseWorld:
        """Draw a world.

        Parameters
        ----------
        seed : int
            Seeds the world (its members, titles and variants).
        n_titles : int, default=32
            Titles released over the run.
        impressions_per_title : int, default=150
        live_titles : int, default=6
        n_members, n_variants, n_themes : int
            As :meth:`ArtworkWorld.generate`.
        """
        for name, value in (("impressions_per_title", impressions_per_title),
                            ("live_titles", live_titles)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if live_titles > n_titles:
            raise ValueError(f"live_titles must be <= n_titles={n_titles}, got {live_titles}")
        world = ArtworkWorld.generate(seed=seed, n_members=n_members, n_titles=n_titles,
                                      n_variants=n_variants, n_themes=n_themes)
        return cls(world=world, impressions_per_title=impressions_per_title,
                   live_titles=live_titles)

    @property
    def n_rounds(self) -> int:
        """Impressions over the whole run: every title's."""
        return self.world.n_titles * self.impressions_per_title

    def action_features(self, title: int, *, tagged: bool) -> list[dict[str, dict[str, Any]]]:
        """A title's variants as a catalogue gives them to ranking, in variant order.

        Parameters
        ----------
        title : int
        tagged : bool
            Whether the variants carry their theme tag (``Depicts``).
        """
        world = self.world
        genres = {THEMES[g]: True for g in world.title_genres[title]}
        out = []
        for v in range(world.n_variants):
            features: dict[str, dict[str, Any]] = {
                "Face": {"closeup": "yes" if world.variant_closeup[title, v] else "no"},
                "Color": {"brightness": round(float(world.variant_brightness[title, v]), 3)},
                "Genre": genres,
                "Variant": {"id": world.variant_id(title, v)},
            }
            if tagged:
                features[TAGS_NAMESPACE] = {f"theme={THEMES[world.variant_theme[title, v]]}": 1.0}
            out.append(features)
        return out

    def sample_requests(self, *, seed: int) -> np.ndarray:
        """(member, title) impressions in release order, shape (n_rounds, 2).

        Titles are released in index order, ``live_titles`` at a time; each
        impression goes to a live title drawn uniformly, and a title that has
        had ``impressions_per_title`` leaves for the next one.
        """
        rng = np.random.default_rng(seed)
        world = self.world
        remaining = np.full(world.n_titles, self.impressions_per_title)
        live = list(range(self.live_titles))
        released = self.live_titles
        titles = np.empty(self.n_rounds, dtype=int)
        for step in range(self.n_rounds):
            slot = int(rng.integers(len(live)))
            title = live[slot]
            titles[step] = title
            remaining[title] -= 1
            if remaining[title] == 0:
                if released < world.n_titles:
                    live[slot] = released
                    released += 1
                else:
                    live.pop(slot)
        members = rng.integers(world.n_members, size=self.n_rounds)
        return np.column_stack([members, titles])


@dataclass(frozen=True, eq=False)
class ReleaseRun:
    r"""Per-impression exact values of a run through the releases.

    Attributes
    ----------
    title, age : ndarray of shape (n_rounds,), dtype int
        The impression's title and how many impressions that title had before.
    expected_take : ndarray of shape (n_rounds,)
        :math:`\sum_a \pi_t(a)\, p(a)` of the pmf played.
    oracle_take, uniform_take : ndarray of shape (n_rounds,)
        The best variant's take probability, and the variants' mean.
    """

    title: np.ndarray
    age: np.ndarray
    expected_take: np.ndarray
    oracle_take: np.ndarray
    uniform_take: np.ndarray

    def _new_titles(self, skip_titles: int) -> np.ndarray:
        return self.title >= skip_titles

    def take_rate_by_age(self, *, width: int, skip_titles: int = 0) -> np.ndarray:
        """Mean expected take of titles' impressions, per age bucket of ``width``.

        Parameters
        ----------
        width : int
            Impressions per bucket: bucket ``k`` holds ages ``k*width`` to ``(k+1)*width - 1``.
        skip_titles : int, default=0
            Leave out the first titles released (those the learner met with
            nothing learned).

        Returns
        -------
        ndarray of shape (ceil(max_age / width),)
        """
        keep = self._new_titles(skip_titles)
        buckets = self.age[keep] // width
        sums = np.bincount(buckets, weights=self.expected_take[keep])
        return sums / np.bincount(buckets)

    def reference_rates(self, *, skip_titles: int = 0) -> tuple[float, float]:
        """(uniform, oracle) take rates over the same impressions."""
        keep = self._new_titles(skip_titles)
        return float(self.uniform_take[keep].mean()), float(self.oracle_take[keep].mean())

    def impressions_to_reach(self, rate: float, *, width: int, skip_titles: int = 0
                             ) -> int | None:
        """Impressions a new title has had when its bucket's take rate first reaches ``rate``.

        The start of the first age bucket whose mean expected take is at least
        ``rate`` (0 when its first impressions already are), or None when none is.
        """
        rates = self.take_rate_by_age(width=width, skip_titles=skip_titles)
        reached = np.flatnonzero(rates >= rate)
        return int(reached[0]) * width if len(reached) else None


def run_releases(releases: ReleaseWorld, learner: Any, *, tagged: bool, seed: int,
                 progress: Callable[[int], None] | None = None) -> ReleaseRun:
    """Let a learner learn online through the releases.

    Parameters
    ----------
    releases : ReleaseWorld
    learner : banditkit.learner.Learner
        Anything with ``predict_one(context, actions) -> pmf`` and
        ``learn_one(context, actions, *, chosen, reward, probability)``.
    tagged : bool
        Whether the variants carry their theme tags.
    seed : int
        Seeds the requests, the choice from each pmf and the takes; runs with
        the same seed meet the same members and titles in the same order.
    progress : callable, default=None
        Called with 1 after each impression.
    """
    rng = np.random.default_rng(seed)
    requests = releases.sample_requests(seed=int(rng.integers(2**32)))
    world = releases.world
    actions = [releases.action_features(t, tagged=tagged) for t in range(world.n_titles)]
    take = world.take_probability[requests[:, 0], requests[:, 1]]  # (n_rounds, n_variants)
    ages = np.zeros(world.n_titles, dtype=int)
    age = np.empty(len(requests), dtype=int)
    expected = np.empty(len(requests))
    for step, (member, title) in enumerate(requests):
        context = world.context(int(member))
        pmf = np.asarray(learner.predict_one(context, actions[title]), dtype=np.float64)
        chosen = int(rng.choice(len(pmf), p=pmf / pmf.sum()))
        reward = float(rng.random() < take[step, chosen])
        learner.learn_one(context, actions[title], chosen=chosen, reward=reward,
                          probability=float(pmf[chosen]))
        expected[step] = float(pmf @ take[step])
        age[step] = ages[title]
        ages[title] += 1
        if progress is not None:
            progress(1)
    return ReleaseRun(title=requests[:, 1].copy(), age=age, expected_take=expected,
                      oracle_take=take.max(axis=1), uniform_take=take.mean(axis=1))


@dataclass(frozen=True)
class TaggingComparison:
    """How fast a new title's artwork is personalized, with and without theme tags.

    Both learners meet the same members and titles in the same order
    (:func:`compare_tagging`); only the tags differ. Rates are exact expected
    take rates over the impressions of the titles released after the first
    ``skip_titles``.

    Attributes
    ----------
    early : int
        The first impressions of each new title that ``take_rate`` covers.
    take_rate : dict of {"tagged", "untagged"} to float
        Over each new title's first ``early`` impressions.
    uniform, oracle : float
        Reference take rates over the same impressions.
    target : float
        A quarter of the way from ``uniform`` to ``oracle``.
    impressions_to_target : dict of {"tagged", "untagged"} to int or None
        :meth:`ReleaseRun.impressions_to_reach` of ``target`` (None: never).
    impressions_per_title : int
    """

    early: int
    take_rate: dict[str, float]
    uniform: float
    oracle: float
    target: float
    impressions_to_target: dict[str, int | None]
    impressions_per_title: int

    def line(self) -> str:
        """One line for the demo's output."""
        def reach(kind: str) -> str:
            value = self.impressions_to_target[kind]
            return f"not within {self.impressions_per_title}" if value is None else str(value)

        return (f"New titles (first {self.early} impressions): take rate "
                f"{self.take_rate['tagged']:.3f} with theme tags, "
                f"{self.take_rate['untagged']:.3f} without (uniform {self.uniform:.3f}); "
                f"{self.target:.3f} reached after {reach('tagged')} impressions with tags, "
                f"{reach('untagged')} without.")


def compare_tagging(releases: ReleaseWorld, *, seed: int, args: str = RELEASE_POLICY_ARGS,
                    early: int = 50, width: int = 25, skip_titles: int = 8,
                    progress: Callable[[int], None] | None = None) -> TaggingComparison:
    """Run one learner with theme tags and one without through the same releases.

    Parameters
    ----------
    releases : ReleaseWorld
    seed : int
        Of :func:`run_releases`, the same for both.
    args : str, default=RELEASE_POLICY_ARGS
        Vowpal Wabbit arguments of both learners.
    early : int, default=50
        First impressions of each title whose take rate is reported.
    width : int, default=25
        Age buckets of :meth:`ReleaseRun.impressions_to_reach`.
    skip_titles : int, default=8
        Titles released first, left out (both learners start with nothing).
    progress : callable, default=None
        Called with 1 after each impression of either run.
    """
    runs = {kind: run_releases(releases, VWLearner(args=args), tagged=kind == "tagged",
                               seed=seed, progress=progress)
            for kind in ("tagged", "untagged")}
    uniform, oracle = runs["tagged"].reference_rates(skip_titles=skip_titles)
    target = uniform + (oracle - uniform) / 4
    return TaggingComparison(
        early=early,
        take_rate={kind: float(run.expected_take[(run.title >= skip_titles)
                                                 & (run.age < early)].mean())
                   for kind, run in runs.items()},
        uniform=uniform, oracle=oracle, target=target,
        impressions_to_target={kind: run.impressions_to_reach(target, width=width,
                                                              skip_titles=skip_titles)
                               for kind, run in runs.items()},
        impressions_per_title=releases.impressions_per_title)
