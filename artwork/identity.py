"""Identity: perceptual hashes and keypoints to find near-duplicate variants.

The hashes follow the ImageHash library's algorithms (aHash, dHash, pHash on
8 x 8 bits; Krawetz, "Looks like it", 2011) so that they survive resizing and
recompression. A crop moves every hash cell, so a second, crop-robust signal
matches ORB keypoints (Rublee et al. 2011) between two images.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from artwork.imageops import fit, to_gray
from artwork.io import check_image

__all__ = [
    "FINGERPRINT_SIDE",
    "Fingerprint",
    "fingerprint",
    "fingerprint_gray",
    "hamming",
    "is_near_duplicate",
    "orb_match_share",
]


#: Longer side of the copy the hashes and keypoints are computed on.
FINGERPRINT_SIDE = 384


@dataclass(frozen=True, kw_only=True)
class Fingerprint:
    """What identifies an image up to resizing, recompression and cropping.

    Attributes
    ----------
    ahash, dhash, phash : str
        64-bit perceptual hashes as 16 hex digits.
    orb : ndarray of shape (n_keypoints, 32), dtype uint8
        ORB descriptors (at most ``n_keypoints``) of a 384-pixel copy; the
        crop-robust signal.
    """

    ahash: str
    dhash: str
    phash: str
    orb: np.ndarray

    def to_dict(self) -> dict[str, str]:
        """The hashes as JSON-ready strings (descriptors are left out)."""
        return {"ahash": self.ahash, "dhash": self.dhash, "phash": self.phash}


def _bits_to_hex(bits: np.ndarray) -> str:
    """The bits (first most significant) as hex, at least 16 digits."""
    flat = bits.reshape(-1)
    value = int.from_bytes(np.packbits(flat).tobytes(), "big") >> (-len(flat) % 8)
    return f"{value:016x}"


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes of the same length."""
    if len(a) != len(b):
        raise ValueError(f"hashes must have the same length, got {len(a)} and {len(b)}")
    return int(bin(int(a, 16) ^ int(b, 16)).count("1"))


def fingerprint(image: np.ndarray, *, n_keypoints: int = 300) -> Fingerprint:
    """Perceptual hashes and ORB descriptors of an image.

    Parameters
    ----------
    image : ndarray of shape (height, width, 3), dtype uint8
    n_keypoints : int, default=300
        ORB keypoints kept, on a copy whose longer side is 384 pixels.

    Returns
    -------
    Fingerprint
    """
    check_image(image)
    return fingerprint_gray(to_gray(image), n_keypoints=n_keypoints)


def fingerprint_gray(gray: np.ndarray, *, n_keypoints: int = 300) -> Fingerprint:
    """:func:`fingerprint` of a greyscale image (resized here to
    :data:`FINGERPRINT_SIDE` pixels, or taken as it is when no larger)."""
    gray = fit(gray, FINGERPRINT_SIDE)[0]
    small = cv2.resize(gray, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float64)
    ahash = _bits_to_hex(small > small.mean())
    wide = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.float64)
    dhash = _bits_to_hex(wide[:, 1:] > wide[:, :-1])
    big = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(big)[:8, :8]
    phash = _bits_to_hex(low > np.median(low))
    orb = cv2.ORB_create(nfeatures=n_keypoints)
    _, descriptors = orb.detectAndCompute(gray, None)
    if descriptors is None:
        descriptors = np.zeros((0, 32), dtype=np.uint8)
    return Fingerprint(ahash=ahash, dhash=dhash, phash=phash, orb=descriptors)


def orb_match_share(a: Fingerprint, b: Fingerprint, *, ratio: float = 0.75) -> float:
    """Share of the smaller keypoint set with a distinctive match in the other.

    Lowe's ratio test on Hamming distances of ORB descriptors. A crop keeps
    most keypoints of the kept area, so the share stays high; unrelated
    images share few distinctive matches.

    Returns
    -------
    float
        In [0, 1]; 0 when either image has fewer than 10 keypoints.
    """
    if len(a.orb) < 10 or len(b.orb) < 10:
        return 0.0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(a.orb, b.orb, k=2)
    good = sum(
        1 for pair in pairs if len(pair) == 2 and pair[0].distance < ratio * pair[1].distance
    )
    return good / min(len(a.orb), len(b.orb))


def is_near_duplicate(
    a: Fingerprint,
    b: Fingerprint,
    *,
    max_phash_distance: int = 10,
    min_orb_share: float = 0.2,
) -> bool:
    """Whether two images are the same artwork up to resize, JPEG or crop.

    Parameters
    ----------
    a, b : Fingerprint
    max_phash_distance : int, default=10
        pHash Hamming distance (of 64 bits) at or under which two images are
        duplicates; resizing and JPEG at quality 50 stay well under 10,
        unrelated images average about 32.
    min_orb_share : float, default=0.2
        Crop-robust fallback: ORB match share at or above which they are.

    Returns
    -------
    bool
    """
    if hamming(a.phash, b.phash) <= max_phash_distance:
        return True
    return orb_match_share(a, b) >= min_orb_share
