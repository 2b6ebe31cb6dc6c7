"""Face detector comparison on real images with known faces (docs/artwork.md).

Recall, false positives and speed of the face detectors a PyPI wheel ships:
OpenCV's Haar cascades (``frontalface_default``, ``frontalface_alt2``, and
``alt2`` plus the profile cascade run on the image and its mirror) and, if
the optional ``dlib`` (``dlib-bin``) wheel is installed, dlib's HOG detector.

Images: scikit-image's ``astronaut`` (one frontal face) and ``camera`` (one
face in three-quarter profile), the faceless ``coffee``, ``rocket``,
``chelsea`` (a cat), scikit-learn's ``china.jpg`` and ``flower.jpg`` and 13
more faceless images scikit-image ships (textures, text, a motorcycle, the
moon, micrographs...); plus
scikit-image's ``lfw_subset`` (100 face crops from Labeled Faces in the Wild,
100 non-face crops), each 25 x 25 crop upscaled 4x and padded by 40 pixels
so the detectors see a face with context.

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
FACELESS = ("coffee", "rocket", "chelsea", "china", "flower", "motorcycle_left",
            "hubble_deep_field", "retina", "coins", "brick", "grass", "gravel", "page",
            "text", "ihc", "clock", "moon", "immunohistochemistry_flip")


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


def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def detectors():
    import artwork.imageops

    out = {}
    for model, sides in (("alt2", (320, 512, 640)), ("default", (512, 640))):
        det = artwork.load_detectors(face_model=model, smile=False, people=False)
        for side in sides:
            name = f"haar_{model}@{side}" + (" (artwork default)" if (model, side) == (
                "alt2", 512) else "")
            out[name] = (
                lambda image, det=det, side=side: [
                    f.box for f in artwork.detect_faces(image, detectors=det, max_side=side)]
            )
    det = artwork.load_detectors(face_model="alt2", smile=False, people=False)
    profile = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades,
                                                 "haarcascade_profileface.xml"))

    def alt2_profile(image):
        boxes = [f.box for f in artwork.detect_faces(image, detectors=det)]
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
    crops = lfw_crops(10 if args.smoke else 100)
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
        print(json.dumps({
            "detector": name,
            "named_faces_found": f"{hits}/{len(FACES)}",
            "named_false_positives": int(false_named),
            "per_image": {n: len(b) for n, b in found.items()},
            "lfw_recall": round(lfw_hit / n_faces, 3),
            "lfw_nonface_false_positive_rate": round(lfw_fp / (len(crops) - n_faces), 3),
            "ms_per_image_median": round(1000 * float(np.median(times)), 2),
            "ms_per_image_min": round(1000 * float(np.min(times)), 2),
            "ms_per_image_p95": round(1000 * float(np.percentile(times, 95)), 2),
            **versions,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
