"""The one error type of ``artwork``: bad input, named and explained."""

from __future__ import annotations

__all__ = ["ArtworkInputError"]


class ArtworkInputError(ValueError):
    """An image or video that ``artwork`` cannot or will not analyse.

    Parameters
    ----------
    code : str
        A stable, machine-readable reason (``"empty"``, ``"truncated"``,
        ``"not_an_image"``, ``"svg"``, ``"html"``, ``"too_large"``,
        ``"too_small"``, ``"bad_aspect"``, ``"bad_array"``, ``"not_a_video"``,
        ``"no_frames"``, ``"not_found"``). A server maps every code to a 4xx answer.
    message : str
        A sentence for a person: what was wrong, what was expected, what was
        received.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
