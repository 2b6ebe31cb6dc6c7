"""``banditkit artwork analyze|frames``: thin click shells over :mod:`artwork`."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

import artwork as aw
from artwork.imageops import single_thread

__all__ = ["artwork"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")

# One set of detectors per worker process, built by the pool initializer
# (cascades cannot be pickled, and building them per image would cost more
# than the analysis).
_worker_detectors: aw.Detectors | None = None


def _parse_aspect(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        if ":" in value:
            w, h = value.split(":", 1)
            aspect = float(w) / float(h)
        else:
            aspect = float(value)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(
            f"expected W:H (2:3) or a number (0.667), got {value!r}", param_hint="--aspect"
        ) from None
    if not aspect > 0:
        raise click.BadParameter(f"must be positive, got {value!r}", param_hint="--aspect")
    return aspect


def _expand(paths: tuple[Path, ...]) -> tuple[list[Path], int]:
    """Files as given, directories walked for image suffixes; count skipped files."""
    files, skipped = [], 0
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file():
                    if child.suffix.lower() in IMAGE_SUFFIXES:
                        files.append(child)
                    else:
                        skipped += 1
        else:
            files.append(path)
    return files, skipped


def _init_worker() -> None:
    global _worker_detectors
    single_thread()  # one core per process: the pool is the parallelism
    _worker_detectors = aw.load_detectors()


_Job = tuple[str, float | None, bool, int]


def _analyze_one(job: _Job) -> tuple[dict[str, Any], aw.Fingerprint | None]:
    """The JSON record of one file, and its fingerprint for the near-duplicate check."""
    path, aspect, expect_face, max_pixels = job
    if _worker_detectors is None:
        _init_worker()
    try:
        result = aw.analyze(path, detectors=_worker_detectors, expected_aspect=aspect,
                            expect_face=expect_face, max_pixels=max_pixels)
    except aw.ArtworkInputError as exc:
        return {"path": path, "error": {"code": exc.code, "message": exc.message}}, None
    except Exception as exc:  # a bug must not stop a batch: report it per file
        return {"path": path, "error": {"code": "internal", "message": repr(exc)}}, None
    return {"path": path, **result.to_dict()}, result.fingerprint


def _results(jobs: list[_Job], workers: int
             ) -> Iterator[tuple[dict[str, Any], aw.Fingerprint | None]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_analyze_one, jobs)
        return
    # forkserver: workers start from a clean process, never from a fork of
    # this one while OpenCV's or tqdm's threads hold a lock
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                             mp_context=context) as pool:
        yield from pool.map(_analyze_one, jobs, chunksize=4)


@click.group("artwork")
def artwork() -> None:
    """Analyse artwork images and mine candidate frames from trailers."""


@artwork.command("analyze")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per image per line on stdout.")
@click.option("--aspect", default=None, metavar="W:H",
              help="Slot aspect ratio (2:3, 16:9 or a number); mismatches are warned about.")
@click.option("--expect-face/--no-expect-face", default=True, show_default=True,
              help="Warn (no_face) about artwork without a face.")
@click.option("--workers", type=click.IntRange(min=1), default=lambda: min(2, os.cpu_count() or 1),
              show_default="number of cores, at most 2", help="Processes analysing in parallel.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=aw.io.DEFAULT_MAX_PIXELS,
              show_default=True, help="Refuse images larger than this (decompression bombs).")
def analyze_command(paths: tuple[Path, ...], as_json: bool, aspect: str | None,
                    expect_face: bool, workers: int, max_pixels: int) -> None:
    """Analyse images (files or directories, walked for image files).

    Each file gets the warnings the marketer page gives an upload: each is a
    variant checked against the files before it for near-duplicates, and
    against the slot's aspect ratio when --aspect is given. Errors are
    reported per file on stderr (and as an ``error`` field with --json) and
    the run goes on; the exit code is 1 if any file failed.
    """
    expected = _parse_aspect(aspect)
    files, skipped = _expand(paths)
    if skipped:
        click.echo(f"skipped {skipped} file(s) without an image suffix", err=True)
    if not files:
        raise click.UsageError("no image files found in the given paths")
    jobs = [(str(path), expected, expect_face, max_pixels) for path in files]
    failures = 0
    seen: dict[str, aw.Fingerprint] = {}
    progress = tqdm(total=len(jobs), unit="image", file=sys.stderr,
                    disable=None if not as_json else not sys.stderr.isatty())
    for record, fingerprint in _results(jobs, workers):
        progress.update(1)
        if fingerprint is not None:
            record["warnings"] += [{"code": w.code, "message": w.message}
                                   for w in aw.near_duplicate_warnings(fingerprint, seen)]
            seen[record["path"]] = fingerprint
        if "error" in record:
            failures += 1
            tqdm.write(f"error: {record['path']}: {record['error']['message']}", file=sys.stderr)
        if as_json:
            click.echo(json.dumps(record))
        elif "error" not in record:
            warnings = ", ".join(w["code"] for w in record["warnings"]) or "-"
            tqdm.write(f"{record['path']}: {record['width']}x{record['height']}, "
                       f"{len(record['faces'])} face(s), warnings: {warnings}")
    progress.close()
    if failures:
        click.echo(f"{failures} of {len(jobs)} file(s) failed", err=True)
        sys.exit(1)


@artwork.command("frames")
@click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top", "top_k", type=click.IntRange(min=1), default=8, show_default=True,
              help="How many candidate frames to keep.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True,
              help="Folder for the JPEG frames, manifest.json and contact_sheet.png.")
@click.option("--threshold", type=click.FloatRange(min=0, min_open=True), default=27.0,
              show_default=True, help="Cut threshold (mean HSV difference, 0-255).")
def frames_command(video: Path, top_k: int, out_dir: Path, threshold: float) -> None:
    """Mine the best, mutually different frames of VIDEO as artwork candidates."""
    detectors = aw.load_detectors()
    try:
        info = aw.probe_video(video)
        with tqdm(total=info["n_frames"] or None, unit="frame", file=sys.stderr) as bar:
            mining = aw.mine_frames(video, detectors=detectors, top_k=top_k,
                                         threshold=threshold, progress=bar.update)
    except aw.ArtworkInputError as exc:
        raise click.ClickException(exc.message) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for rank, cand in enumerate(mining.candidates, start=1):
        name = f"frame_{rank:02d}_{cand.timestamp:09.3f}s.jpg"
        aw.save_image(cand.image, out_dir / name)
        entries.append({
            "rank": rank, "file": name, "frame_index": cand.frame_index,
            "timestamp": round(cand.timestamp, 3), "shot_index": cand.shot_index,
            "score": round(cand.score, 4), **cand.analysis.to_dict(),
        })
    sheet = None
    if mining.candidates:
        sheet = "contact_sheet.png"
        aw.save_image(aw.contact_sheet(mining.candidates), out_dir / sheet)
    manifest = {
        "video": str(video), "fps": mining.fps, "n_frames": mining.n_frames,
        "width": mining.width, "height": mining.height,
        "shots": [{"start": s.start, "end": s.end, "start_time": round(s.start_time, 3),
                   "end_time": round(s.end_time, 3)} for s in mining.shots],
        "candidates": entries, "contact_sheet": sheet,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    click.echo(f"{len(entries)} frame(s) from {len(mining.shots)} shot(s) in "
               f"{mining.n_frames} frames written to {out_dir}")

