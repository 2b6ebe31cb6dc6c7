"""simulator: worlds with known ground truth, off-policy estimators and replay."""

__all__: list[str] = []
