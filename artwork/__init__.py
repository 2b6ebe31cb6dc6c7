"""artwork: images and videos to namespaced features. Knows nothing of bandits.

Build the detectors once, then analyse files, upload bytes or arrays::

    import artwork
    detectors = artwork.load_detectors()
    result = artwork.analyze(upload_bytes, detectors=detectors, expected_aspect=2 / 3)
    result.to_namespaces()   # {"Img": {...}, "Color": {...}, "Face": {...}, ...}
    result.warnings          # [ArtworkWarning(code="too_dark", message=...), ...]

and mine candidate frames from a trailer with :func:`mine_frames`.
"""

from artwork._errors import ArtworkInputError
from artwork.analysis import (
    Analysis,
    ArtworkWarning,
    analyze,
    analyze_image,
    near_duplicate_warnings,
)
from artwork.detectors import (
    Detectors,
    Face,
    Region,
    detect_faces,
    detect_people,
    detect_text,
    load_detectors,
    saliency_map,
)
from artwork.features import (
    color_features,
    colorfulness,
    composition_features,
    dominant_colors,
    face_features,
    geometry_features,
    noise_sigma,
    people_features,
    quality_features,
    sharpness,
    text_features,
)
from artwork.frames import (
    FrameCandidate,
    FrameMining,
    Shot,
    contact_sheet,
    mine_frames,
    probe_video,
)
from artwork.identity import Fingerprint, fingerprint, hamming, is_near_duplicate
from artwork.io import LoadedImage, check_image, load_image, save_image

__all__ = [
    "Analysis",
    "ArtworkInputError",
    "ArtworkWarning",
    "Detectors",
    "Face",
    "Fingerprint",
    "FrameCandidate",
    "FrameMining",
    "LoadedImage",
    "Region",
    "Shot",
    "analyze",
    "analyze_image",
    "check_image",
    "color_features",
    "colorfulness",
    "composition_features",
    "contact_sheet",
    "detect_faces",
    "detect_people",
    "detect_text",
    "dominant_colors",
    "face_features",
    "fingerprint",
    "geometry_features",
    "hamming",
    "is_near_duplicate",
    "load_detectors",
    "load_image",
    "mine_frames",
    "near_duplicate_warnings",
    "noise_sigma",
    "people_features",
    "probe_video",
    "quality_features",
    "saliency_map",
    "save_image",
    "sharpness",
    "text_features",
]
