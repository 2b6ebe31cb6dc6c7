"""artwork: images and videos to namespaced features. Knows nothing of bandits."""

__all__: list[str] = []
