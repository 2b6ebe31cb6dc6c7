"""Face detector comparison on real images with known faces (docs/artwork.md).

Recall, false positives and speed of the face detectors an installed wheel
ships: artwork's detector (the first stages of scikit-image's LBP cascade
propose, the whole LBP cascade gates each proposal on a fine grid, OpenCV's
Haar ``frontalface_alt2`` verifies at a fixed face size) and its variants
(no gate, the whole cascade proposing, the previous default), the LBP cascade
alone, OpenCV's Haar cascades alone (``frontalface_default``,
``frontalface_alt2``, and ``alt2`` plus the profile cascade run on the image
and its mirror) and, if the optional ``dlib`` (``dlib-bin``) wheel is
installed, dlib's HOG detector.

Images: scikit-image's ``astronaut`` (one frontal face) and ``camera`` (one
face in three-quarter profile), the faceless ``coffee``, ``rocket``,
``chelsea`` (a cat), scikit-learn's ``china.jpg`` and ``flower.jpg`` and 13
more faceless images scikit-image ships (textures, text, a motorcycle, the
moon, micrographs...); plus
scikit-image's ``lfw_subset`` (100 face crops from Labeled Faces in the Wild,
100 non-face crops), each 25 x 25 crop upscaled 4x and padded by 40 pixels
so the detectors see a face with context, and each face pasted at poster
size: upscaled to 8%, 15% and 30% of a 1000 x 1500 poster's height, padded
by 40% of its side (edge pixels repeated) and pasted over ``china.jpg``.

Usage::

    python benchmarks/bench_artwork_faces.py [--smoke] [--repeat N]

Prints one JSON line per detector.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import cv2
import numpy as np

# ground-truth boxes (x, y, w, h) read off the images by eye
FACES = {"astronaut": (175, 60, 95, 105), "camera": (150, 60, 110, 120)}
FACELESS_NATIVE = ("coffee", "rocket", "chelsea", "china", "flower", "motorcycle_left",
                   "hubble_deep_field", "retina", "coins", "brick", "grass", "gravel", "page",
                   "text", "ihc", "clock", "moon", "immunohistochemistry_flip")
FACELESS = FACELESS_NATIVE + tuple(f"{name}@poster" for name in FACELESS_NATIVE)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="20 LFW crops instead of 200")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats per image")
    return parser.parse_args(argv)


def real_images():
    import skimage.data as data
    from sklearn.datasets import load_sample_image

    images = {
        "astronaut": data.astronaut(),
        "camera": cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2RGB),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "chelsea": data.chelsea(),
        "china": load_sample_image("china.jpg"),
        "flower": load_sample_image("flower.jpg"),
    }
    # the astronaut pasted on a 1000 x 1500 poster over china.jpg, face 8%, 15%, 30% of the height
    background = cv2.resize(images["china"], (1000, 1500), interpolation=cv2.INTER_CUBIC)
    for share in (8, 15, 30):
        scale = share / 100 * 1500 / FACES["astronaut"][3]
        side = round(512 * scale)
        poster = background.copy()
        astro = cv2.resize(images["astronaut"], (side, side),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        fx, fy, fw, fh = (round(v * scale) for v in FACES["astronaut"])
        left = min(max(0, fx + fw // 2 - 500), max(0, side - 1000))  # keep the face in frame
        top = max(0, fy - 150)
        astro = astro[top : top + 1300, left : left + 1000]
        x0, y0 = (1000 - astro.shape[1]) // 2, 200
        poster[y0 : y0 + astro.shape[0], x0 : x0 + astro.shape[1]] = astro
        FACES[f"astronaut_poster_{share}"] = (x0 + fx - left, y0 + fy - top, fw, fh)
        images[f"astronaut_poster_{share}"] = poster
    images["motorcycle_left"] = data.stereo_motorcycle()[0]
    for name in ("hubble_deep_field", "retina", "coins", "brick", "grass",
                 "gravel", "page", "text", "clock", "moon"):
        image = getattr(data, name)()
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        images[name] = np.ascontiguousarray(image[..., :3])
    images["ihc"] = data.immunohistochemistry()
    images["immunohistochemistry_flip"] = np.ascontiguousarray(data.immunohistochemistry()[::-1])
    for name in FACELESS_NATIVE:  # stretched to a poster, as analyze sees a poster
        images[f"{name}@poster"] = cv2.resize(images[name], (1000, 1500),
                                              interpolation=cv2.INTER_CUBIC)
    return images


def lfw_crops(n_each):
    import skimage.data as data

    path = os.path.join(os.path.dirname(data.__file__), "lfw_subset.npy")
    crops = np.load(path)
    out = []
    for i, crop in enumerate(crops):
        if (i % 100) >= n_each:
            continue
        gray = np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8)
        gray = cv2.resize(gray, (100, 100), interpolation=cv2.INTER_CUBIC)
        gray = cv2.copyMakeBorder(gray, 40, 40, 40, 40, cv2.BORDER_REPLICATE)
        out.append((cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), i < 100))
    return out


def lfw_posters(share, n_each):
    """The LFW faces at ``share`` of a 1000 x 1500 poster's height, with their boxes."""
    import skimage.data as data
    from sklearn.datasets import load_sample_image

    crops = np.load(os.path.join(os.path.dirname(data.__file__), "lfw_subset.npy"))[:n_each]
    background = cv2.resize(load_sample_image("china.jpg"), (1000, 1500),
                            interpolation=cv2.INTER_CUBIC)
    side = round(share * 1500)
    pad = side * 2 // 5
    out = []
    for crop in crops:
        gray = np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8)
        face = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
        face = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        poster = background.copy()
        x0, y0 = (1000 - face.shape[1]) // 2, 300
        poster[y0 : y0 + face.shape[0], x0 : x0 + face.shape[1]] = face[..., None]
        out.append((poster, (x0 + pad, y0 + pad, side, side)))
    return out


def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def detectors():
    import dataclasses

    import artwork.imageops
    from artwork import detectors as faces

    out = {}
    det = artwork.load_detectors(smile=False, people=False)
    whole = faces.lbp_face_cascade(faces.LBP_STAGES)
    variants = {
        f"lbp{faces.PROPOSER_STAGES}@{faces.FACE_SEARCH_SIDE} step {faces.PROPOSAL_STEP}"
        " + lbp gate + alt2 verify (artwork default)": (det, {}),
        "same, no gate": (dataclasses.replace(det, face_gate=None), {}),
        "same, whole lbp cascade proposes": (dataclasses.replace(det, face_proposer=whole), {}),
        "whole lbp cascade @448 step 1.2 proposes, no gate (the previous proposer)": (
            dataclasses.replace(det, face_proposer=whole, face_gate=None),
            {"max_side": 448, "step": 1.2}),
    }
    for name, (variant, options) in variants.items():
        out[name] = (lambda v, o: lambda image: [
            f.box for f in artwork.detect_faces(image, detectors=v, **o)])(variant, options)
    lbp = whole

    def cascade_alone(cascade, side, min_size, equalize=True):
        def detect(image):
            work, scale = artwork.imageops.fit(image, side)
            gray = cv2.cvtColor(work, cv2.COLOR_RGB2GRAY)
            if equalize:
                gray = cv2.equalizeHist(gray)
            found = cascade.detectMultiScale(gray, scaleFactor=1.15, minNeighbors=4,
                                             minSize=(min_size, min_size))
            return [artwork.imageops.scale_box(b, scale, image.shape) for b in found]
        return detect

    out["lbp@448 alone"] = cascade_alone(lbp, 448, 24)
    for model, sides in (("alt2", (320, 512)), ("default", (512,))):
        cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades,
                                                     f"haarcascade_frontalface_{model}.xml"))
        for side in sides:
            out[f"haar_{model}@{side}"] = cascade_alone(cascade, side, 32)
    alt2 = out["haar_alt2@512"]
    profile = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades,
                                                 "haarcascade_profileface.xml"))

    def alt2_profile(image):
        boxes = alt2(image)
        work, scale = artwork.imageops.fit(image, 512)
        gray = cv2.equalizeHist(cv2.cvtColor(work, cv2.COLOR_RGB2GRAY))
        width = gray.shape[1]
        for flipped in (False, True):
            g = gray[:, ::-1].copy() if flipped else gray
            found = profile.detectMultiScale(g, scaleFactor=1.15, minNeighbors=4,
                                             minSize=(24, 24))
            for x, y, w, h in found:
                if flipped:
                    x = width - x - w
                box = tuple(int(round(v / scale)) for v in (x, y, w, h))
                if all(iou(box, b) < 0.3 for b in boxes):
                    boxes.append(box)
        return boxes

    out["haar_alt2+profile@512"] = alt2_profile
    try:
        import dlib
    except ImportError:
        print(json.dumps({"detector": "dlib_hog", "skipped": "dlib not installed "
                          "(pip install dlib-bin)"}))
    else:
        hog = dlib.get_frontal_face_detector()

        def dlib_hog(image, upsample=1):
            work, scale = artwork.imageops.fit(image, 640)
            rects = hog(cv2.cvtColor(work, cv2.COLOR_RGB2GRAY), upsample)
            return [tuple(int(round(v / scale)) for v in
                          (r.left(), r.top(), r.width(), r.height())) for r in rects]

        out["dlib_hog"] = dlib_hog
        out["dlib_hog_noupsample"] = lambda image: dlib_hog(image, 0)
    return out


def main(argv=None):
    args = parse_args(argv)
    cv2.setNumThreads(1)
    images = real_images()
    n_each = 10 if args.smoke else 100
    crops = lfw_crops(n_each)
    posters = {share: lfw_posters(share, n_each) for share in (0.08, 0.15, 0.3)}
    versions = {"python": platform.python_version(), "opencv": cv2.__version__}
    for name, detect in detectors().items():
        found, times = {}, []
        for image_name, image in images.items():
            detect(image)  # warm-up
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                boxes = detect(image)
                times.append(time.perf_counter() - t0)
            found[image_name] = boxes
        hits = sum(any(iou(b, FACES[n]) >= 0.3 for b in found[n]) for n in FACES)
        false_named = sum(len(found[n]) for n in FACELESS) + sum(
            sum(iou(b, FACES[n]) < 0.3 for b in found[n]) for n in FACES)
        lfw_hit = sum(bool(detect(img)) for img, is_face in crops if is_face)
        lfw_fp = sum(bool(detect(img)) for img, is_face in crops if not is_face)
        n_faces = sum(is_face for _, is_face in crops)
        poster_recall = {}
        for share, cases in posters.items():
            hits_at = 0
            for poster, truth in cases:
                t0 = time.perf_counter()
                boxes = detect(poster)
                times.append(time.perf_counter() - t0)
                hits_at += any(iou(b, truth) >= 0.3 for b in boxes)
            poster_recall[f"{share:.0%}"] = round(hits_at / len(cases), 3)
        print(json.dumps({
            "detector": name,
            "named_faces_found": f"{hits}/{len(FACES)}",
            "named_false_positives": int(false_named),
            "false_positives_by_image": {n: len(b) for n, b in found.items()
                                         if n in FACELESS and b},
            "lfw_recall": round(lfw_hit / n_faces, 3),
            "lfw_nonface_false_positive_rate": round(lfw_fp / (len(crops) - n_faces), 3),
            "lfw_recall_on_posters_by_face_height": poster_recall,
            "ms_per_image_median": round(1000 * float(np.median(times)), 2),
            "ms_per_image_min": round(1000 * float(np.min(times)), 2),
            "ms_per_image_p95": round(1000 * float(np.percentile(times, 95)), 2),
            **versions,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
