"""A synthetic artwork world whose ground truth is known exactly.

Members have a taste over themes; each title has several artwork variants, each
leaning to one theme; the chance that a member plays a title from an impression
(a "take") grows with the member's taste for the variant's theme. The member's
observable context carries a noisy estimate of that taste (their viewing
history), so a contextual bandit can learn to personalize and any policy's true
take rate can be computed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ArtworkWorld", "THEMES"]

THEMES = ("romance", "action", "comedy", "horror", "drama", "family", "scifi", "crime")
COUNTRIES = ("BR", "US", "IN", "FR", "JP")
DEVICES = ("tv", "mobile", "web")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True, eq=False)
class ArtworkWorld:
    """Members × titles × artwork variants with exact take probabilities.

    Build one with :meth:`generate`; the fields are its ground truth.

    Attributes
    ----------
    taste : ndarray of shape (n_members, n_themes)
        True taste of each member over themes, rows sum to 1.
    observed_taste : ndarray of shape (n_members, n_themes)
        What the context reveals: the taste seen through a finite viewing history.
    country, device : ndarray of shape (n_members,), dtype int
        Indices into ``COUNTRIES`` and ``DEVICES``.
    title_genres : ndarray of shape (n_titles, 2), dtype int
        The two themes of each title.
    variant_theme : ndarray of shape (n_titles, n_variants), dtype int
        The theme each artwork variant leans to.
    variant_closeup, variant_brightness : ndarray of shape (n_titles, n_variants)
        Other artwork features: close-up face (0/1) and brightness in [0, 1].
    take_probability : ndarray of shape (n_members, n_titles, n_variants)
        Probability that the member plays the title when shown that variant.
    """

    taste: np.ndarray
    observed_taste: np.ndarray
    country: np.ndarray
    device: np.ndarray
    title_genres: np.ndarray
    variant_theme: np.ndarray
    variant_closeup: np.ndarray
    variant_brightness: np.ndarray
    take_probability: np.ndarray

    @classmethod
    def generate(
        cls,
        *,
        seed: int,
        n_members: int = 2000,
        n_titles: int = 40,
        n_variants: int = 4,
        n_themes: int = 4,
        personalization: float = 4.0,
        base_take_rate: float = 0.08,
        history_length: int = 30,
    ) -> ArtworkWorld:
        """Draw a world.

        Parameters
        ----------
        seed : int
            Seeds every draw; the same seed gives the same world.
        n_members, n_titles, n_variants : int
            Population sizes. Every title has ``n_variants`` artwork variants.
        n_themes : int, default=4
            Number of themes (at most ``len(THEMES)``).
        personalization : float, default=4.0
            Logit gain of a member's taste for the variant's theme; 0 makes the
            best variant the same for everyone.
        base_take_rate : float, default=0.08
            Take probability of an average member for an average variant.
        history_length : int, default=30
            Titles in the viewing history that reveals taste; smaller is noisier.
        """
        if not 2 <= n_themes <= len(THEMES):
            raise ValueError(f"n_themes must be in [2, {len(THEMES)}], got {n_themes}")
        for name, value in (("n_members", n_members), ("n_titles", n_titles),
                            ("n_variants", n_variants), ("history_length", history_length)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 < base_take_rate < 1:
            raise ValueError(f"base_take_rate must be in (0, 1), got {base_take_rate}")
        rng = np.random.default_rng(seed)
        taste = rng.dirichlet(np.full(n_themes, 0.4), size=n_members)
        history = np.stack([rng.multinomial(history_length, row) for row in taste])
        observed_taste = history / history_length
        country = rng.integers(len(COUNTRIES), size=n_members)
        device = rng.integers(len(DEVICES), size=n_members)

        title_genres = np.stack(
            [rng.choice(n_themes, size=2, replace=False) for _ in range(n_titles)])
        # Variants lean to the title's genres first, then to other themes.
        variant_theme = np.empty((n_titles, n_variants), dtype=int)
        for title in range(n_titles):
            others = rng.permutation(np.setdiff1d(np.arange(n_themes), title_genres[title]))
            order = np.concatenate([title_genres[title], others])
            variant_theme[title] = np.resize(order, n_variants)
        variant_closeup = rng.integers(2, size=(n_titles, n_variants))
        variant_brightness = rng.uniform(0.15, 0.85, size=(n_titles, n_variants))

        title_appeal = rng.normal(0.0, 0.5, size=n_titles)
        variant_quality = rng.normal(0.0, 0.3, size=(n_titles, n_variants))
        theme_taste = taste[:, variant_theme]  # (members, titles, variants)
        # Close-ups work on phones, bright art on TVs: context x artwork effects
        # that only a personalized policy can use.
        on_mobile = (device == DEVICES.index("mobile")).astype(float)[:, None, None]
        on_tv = (device == DEVICES.index("tv")).astype(float)[:, None, None]
        logit = (np.log(base_take_rate / (1 - base_take_rate))
                 + title_appeal[None, :, None]
                 + variant_quality[None]
                 + personalization * (theme_taste - 1.0 / n_themes)
                 + 0.6 * on_mobile * (variant_closeup[None] - 0.5)
                 + 0.8 * on_tv * (variant_brightness[None] - 0.5))
        return cls(taste=taste, observed_taste=observed_taste, country=country, device=device,
                   title_genres=title_genres, variant_theme=variant_theme,
                   variant_closeup=variant_closeup, variant_brightness=variant_brightness,
                   take_probability=_sigmoid(logit))

    @property
    def n_members(self) -> int:
        return self.take_probability.shape[0]

    @property
    def n_titles(self) -> int:
        return self.take_probability.shape[1]

    @property
    def n_variants(self) -> int:
        return self.take_probability.shape[2]

    # -- what a bandit sees -------------------------------------------------

    def context(self, member: int) -> dict[str, dict[str, str | float]]:
        """Context features of a member: profile and taste seen through history."""
        taste = {THEMES[k]: round(float(share), 4)
                 for k, share in enumerate(self.observed_taste[member]) if share > 0}
        return {
            "Member": {"country": COUNTRIES[self.country[member]],
                       "device": DEVICES[self.device[member]]},
            "Taste": taste,
        }

    def variant_id(self, title: int, variant: int) -> str:
        return f"title{title:03d}-art{variant}"

    def action_features(self, title: int) -> list[dict[str, dict[str, str | float]]]:
        """Features of each artwork variant of a title, in variant order.

        ``Id`` lets a learner memorise a variant's own appeal, as a catalogue would.
        """
        genres = {THEMES[g]: 1.0 for g in self.title_genres[title]}
        return [
            {"Artwork": {"theme": THEMES[self.variant_theme[title, v]],
                         "closeup": "yes" if self.variant_closeup[title, v] else "no",
                         "brightness": round(float(self.variant_brightness[title, v]), 3)},
             "Genre": genres,
             "Id": {"variant": self.variant_id(title, v)}}
            for v in range(self.n_variants)
        ]

    # -- sampling -----------------------------------------------------------

    def sample_requests(self, n_requests: int, *, seed: int) -> np.ndarray:
        """Uniformly drawn (member, title) impressions, shape (n_requests, 2)."""
        rng = np.random.default_rng(seed)
        return np.column_stack([rng.integers(self.n_members, size=n_requests),
                                rng.integers(self.n_titles, size=n_requests)])

    def sample_take(self, member: int, title: int, variant: int,
                    rng: np.random.Generator) -> float:
        """1.0 if the member plays the title from this variant, else 0.0."""
        return float(rng.random() < self.take_probability[member, title, variant])

    # -- ground truth -------------------------------------------------------

    def expected_take(self, requests: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """Exact expected take of each request under a policy.

        Parameters
        ----------
        requests : ndarray of shape (n, 2)
            (member, title) pairs.
        probabilities : ndarray of shape (n, n_variants)
            The policy's probability of each variant for each request.

        Returns
        -------
        ndarray of shape (n,)
        """
        requests = np.asarray(requests)
        probabilities = np.asarray(probabilities, dtype=float)
        if probabilities.shape != (len(requests), self.n_variants):
            raise ValueError(f"probabilities must have shape ({len(requests)}, "
                             f"{self.n_variants}), got {probabilities.shape}")
        if not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("probabilities must sum to 1 for each request")
        take = self.take_probability[requests[:, 0], requests[:, 1]]
        return (take * probabilities).sum(axis=1)

    def policy_value(self, probabilities: np.ndarray) -> float:
        """Exact take rate of a policy over all (member, title) pairs, uniformly weighted.

        Parameters
        ----------
        probabilities : ndarray of shape (n_members, n_titles, n_variants)
        """
        probabilities = np.asarray(probabilities, dtype=float)
        if probabilities.shape != self.take_probability.shape:
            raise ValueError(f"probabilities must have shape {self.take_probability.shape}, "
                             f"got {probabilities.shape}")
        return float((self.take_probability * probabilities).sum(axis=2).mean())

    def uniform_policy(self) -> np.ndarray:
        """Each variant with equal probability, shape (n_members, n_titles, n_variants)."""
        return np.full(self.take_probability.shape, 1.0 / self.n_variants)

    def oracle_policy(self) -> np.ndarray:
        """The best variant for each member and title (knows the truth)."""
        return _one_hot(self.take_probability.argmax(axis=2), self.n_variants)

    def best_single_variant_policy(self) -> np.ndarray:
        """The one variant per title that is best on average: no personalization."""
        best = self.take_probability.mean(axis=0).argmax(axis=1)  # (n_titles,)
        return _one_hot(np.broadcast_to(best, self.take_probability.shape[:2]), self.n_variants)


def _one_hot(index: np.ndarray, n: int) -> np.ndarray:
    return (index[..., None] == np.arange(n)).astype(float)
