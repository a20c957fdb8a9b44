"""Detect objects in images with a trained SSD checkpoint.

    python demo.py                      # the embedded synthetic model on the bundled scenes
    python demo.py --prefix model/ssd --epoch 12 --images dog.jpg,street.jpg --out-dir out
    python demo.py --prefix model/ssd --dir photos --ext .png --save-json dets.json
    python demo.py --prefix model/ssd --video in.mp4 --out-video out.mp4 --save-json frames.json
    python demo.py --prefix model/ssd --camera 0 --show

With no ``--prefix``, the model is the small one shipped in
``assets/synthetic_model`` (MobileNet-0.25 SSD300 trained by ``train.py`` on
the synthetic shapes set; see the README), and with neither ``--images`` nor
``--dir`` it runs on the scenes in ``assets/demo_images`` and writes
annotated pictures and ``detections.json`` to ``demo_output/``.

Flags follow mxnet-ssd's ``demo.py``. The network, input size and class names
come from the checkpoint's ``PREFIX-config.json``; ``--network``,
``--data-shape`` and ``--class-names`` override them (and are required for a
params-only checkpoint). Errors are reported as one line on stderr and exit
status 1; the remaining images are still processed.

``--video`` (a file) and ``--camera`` (a device number) read frames with
OpenCV and detect ``--batch-size`` of them per forward pass (default 4 for a
file, 1 for a camera); ``--out-video`` writes them with their detections
drawn, at the input's frame rate (the file appears only once complete);
``--save-json`` writes every frame's detections (``"image": "SOURCE#N"``,
``"frame"``, ``"time"``). A progress line on stderr gives frames/s and the
time left. Ctrl-C stops a camera (exit 0) or a file (exit 130); what was
detected until then is written.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    import numpy as np

    from evaluate.detector import Detection, Detector, ImageDetections

from tools.cli import (ArgumentParser, UsageError, log_to_stderr, parse_class_names, print_error,
                       serial_cpu_copies)

_PROG = "demo.py"
_ASSETS = Path(__file__).resolve().parent / "assets"
#: The embedded model (epoch 0 of this prefix) and the scenes it is shown on.
EMBEDDED_PREFIX = _ASSETS / "synthetic_model" / "ssd_synthetic"
EMBEDDED_IMAGES = _ASSETS / "demo_images"
DEFAULT_OUT_DIR = "demo_output"




def _probability(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _overlap(text: str) -> float:
    value = _float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=_PROG, description="Detect objects in images with a trained SSD checkpoint.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", help="comma-separated image files (default, without --prefix: "
                                      "the bundled synthetic scenes)")
    src.add_argument("--dir", help="directory of images (not recursive)")
    src.add_argument("--video", help="a video file (anything OpenCV's FFmpeg reads: .mp4, .avi, ...)")
    src.add_argument("--camera", type=_int_at_least(0), default=None, metavar="N",
                     help="camera device N (OpenCV's numbering, 0 for the first)")
    p.add_argument("--ext", default=None, help="image extension with --dir (default .jpg)")
    p.add_argument("--prefix", default=None,
                   help="checkpoint prefix: PREFIX-EPOCH.params and PREFIX-config.json "
                        "(default: the embedded synthetic-shapes model)")
    p.add_argument("--epoch", type=_int_at_least(0), default=0, help="checkpoint epoch (default: 0)")
    p.add_argument("--network", default=None, help="network name (default: from the checkpoint config)")
    p.add_argument("--data-shape", type=_int_at_least(32), default=None,
                   help="input size (default: from the checkpoint config)")
    p.add_argument("--class-names", default=None,
                   help="comma-separated class names, or a file with one name per line "
                        "(default: from the checkpoint config)")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--cpu", action="store_true", help="run on the CPU (the default)")
    dev.add_argument("--gpu", type=_int_at_least(0), default=None, metavar="N",
                     help="run on GPU N (needs the mxnet-cu112 build)")
    p.add_argument("--thresh", type=_probability, default=0.5,
                   help="score threshold of the reported detections (default: 0.5)")
    p.add_argument("--nms", type=_overlap, default=None,
                   help="NMS overlap threshold (default: the checkpoint's, normally 0.45)")
    p.add_argument("--force-nms", action=argparse.BooleanOptionalAction, default=None,
                   help="suppress overlapping boxes across classes (default: the checkpoint's)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=None,
                   help="images or frames per forward pass (default: 1; 4 for --video)")
    p.add_argument("--out-video", default=None, metavar="FILE",
                   help="with --video/--camera: write the frames with their detections drawn "
                        "(.mp4, .m4v, .mov: MPEG-4; .avi, .mkv: Motion JPEG)")
    p.add_argument("--max-frames", type=_int_at_least(1), default=None,
                   help="with --video/--camera: stop after this many frames")
    p.add_argument("--out-dir", default=None,
                   help=f"save annotated images here as NAME-detections.png (default: none; "
                        f"{DEFAULT_OUT_DIR} when run on the bundled scenes)")
    p.add_argument("--save-json", default=None, metavar="FILE",
                   help=f"write all detections to this JSON file (default: none; "
                        f"{DEFAULT_OUT_DIR}/detections.json on the bundled scenes)")
    p.add_argument("--show", action=argparse.BooleanOptionalAction, default=False,
                   help="show each annotated image in a window (default: off)")
    p.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                   help="logging verbosity, on stderr (default: WARNING)")
    return p


def _apply_defaults(args: argparse.Namespace) -> None:
    """The embedded model without ``--prefix``; the bundled scenes, saved into
    ``demo_output/``, when no image is named either."""
    video = args.video is not None or args.camera is not None
    if not video:
        for flag, value in (("--out-video", args.out_video), ("--max-frames", args.max_frames)):
            if value is not None:
                raise UsageError(f"{flag} only applies with --video or --camera")
    elif args.out_dir is not None:
        raise UsageError("--out-dir saves pictures of images; for a video use --out-video")
    elif args.ext is not None:
        raise UsageError("--ext only applies with --dir")
    if args.batch_size is None:
        args.batch_size = 4 if args.video is not None else 1
    if args.images is None and args.dir is None and not video:
        if args.prefix is not None:
            raise UsageError("one of the arguments --images --dir --video --camera is required with --prefix")
        if args.ext is not None:
            raise UsageError("--ext only applies with --dir")
        args.dir = str(EMBEDDED_IMAGES)
        args.out_dir = args.out_dir or DEFAULT_OUT_DIR
        args.save_json = args.save_json or os.path.join(args.out_dir, "detections.json")
    if args.prefix is None:
        if not _params_file(EMBEDDED_PREFIX, 0).is_file():
            raise UsageError(f"the embedded model is missing ({_params_file(EMBEDDED_PREFIX, 0)}); "
                             f"give --prefix")
        args.prefix, args.epoch = str(EMBEDDED_PREFIX), 0


def _params_file(prefix: Path, epoch: int) -> Path:
    """``PREFIX-EPOCH.params`` (the checkpoint naming of :mod:`symbol.checkpoint`)."""
    return Path(f"{prefix}-{epoch:04d}.params")


def _image_paths(args: argparse.Namespace) -> list[str]:
    if args.images is not None:
        if args.ext is not None:
            raise UsageError("--ext only applies with --dir")
        paths = [s.strip() for s in args.images.split(",") if s.strip()]
        if not paths:
            raise UsageError("--images is empty")
        return paths
    ext = args.ext or ".jpg"
    ext = (ext if ext.startswith(".") else "." + ext).lower()
    if not os.path.isdir(args.dir):
        raise UsageError(f"image directory not found: {args.dir}")
    paths = sorted(os.path.join(args.dir, n) for n in os.listdir(args.dir)
                   if n.lower().endswith(ext) and os.path.isfile(os.path.join(args.dir, n)))
    if not paths:
        raise UsageError(f"no {ext} images in {args.dir}")
    return paths




def _output_checks(args: argparse.Namespace) -> None:
    if args.out_dir is not None and os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise UsageError(f"--out-dir {args.out_dir} exists and is not a directory")
    if args.save_json is not None and os.path.isdir(args.save_json):
        raise UsageError(f"--save-json {args.save_json} is a directory")
    if args.out_video is not None:
        from common.video import FOURCC

        if os.path.isdir(args.out_video):
            raise UsageError(f"--out-video {args.out_video} is a directory")
        suffix = Path(args.out_video).suffix.lower()
        if suffix not in FOURCC:
            raise UsageError(f"--out-video {args.out_video}: unknown extension {suffix or '(none)'!r} "
                             f"(use one of {', '.join(FOURCC)})")
        if args.video is not None and os.path.abspath(args.out_video) == os.path.abspath(args.video):
            raise UsageError("--out-video would overwrite the --video being read")


def _error(message: object) -> None:
    print_error(_PROG, message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; returns the exit status (0 ok, 1 on any error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _apply_defaults(args)
        paths = [] if args.video is not None or args.camera is not None else _image_paths(args)
        class_names = parse_class_names(args.class_names)
        _output_checks(args)
    except UsageError as err:
        _error(err)
        return 1
    log_to_stderr(args.log_level)
    serial_cpu_copies()
    try:
        if args.video is not None or args.camera is not None:
            return _run_video(args, class_names)
        return _run(args, paths, class_names)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _load_detector(args: argparse.Namespace, class_names: Optional[list[str]]) -> Detector:
    """The checkpoint's detector, warmed up; prints what it is.

    Raises FileNotFoundError, ValueError, RuntimeError or OSError with a one-line message.
    """
    # Imported here so that --help and bad flags answer without loading MXNet.
    from common.devices import resolve_context
    from evaluate.detector import Detector
    from symbol.checkpoint import params_path

    start = time.perf_counter()
    ctx = resolve_context(args.gpu)
    detector = Detector.from_checkpoint(args.prefix, args.epoch, ctx=ctx, batch_size=args.batch_size,
                                        thresh=args.thresh, network=args.network,
                                        data_shape=args.data_shape, class_names=class_names,
                                        nms_thresh=args.nms, force_suppress=args.force_nms)
    detector.warmup()
    cfg = detector.config
    print(f"model {params_path(args.prefix, args.epoch)}: {cfg.network} {cfg.data_shape}x{cfg.data_shape}, "
          f"{cfg.num_classes} classes, on {ctx}, ready in {time.perf_counter() - start:.2f} s")
    return detector


def _run(args: argparse.Namespace, paths: list[str], class_names: Optional[list[str]]) -> int:
    from common.images import load_image
    from evaluate.detector import save_json

    start = time.perf_counter()
    try:
        detector = _load_detector(args, class_names)
    except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        _error(err)
        return 1
    _check_show(args)

    failed = 0
    results: list[ImageDetections] = []
    detect_time = 0.0
    outputs: set[str] = set()
    batch: list[tuple[str, np.ndarray]] = []
    for n, path in enumerate(paths, 1):
        try:
            batch.append((path, load_image(path)))
        except (FileNotFoundError, ValueError) as err:
            _error(err)
            failed += 1
        if batch and (len(batch) == args.batch_size or n == len(paths)):
            errors, elapsed = _detect_batch(detector, batch, args, results, outputs)
            failed += errors
            detect_time += elapsed
            batch = []

    n_det = sum(len(r.detections) for r in results)
    per_image = f" ({1000 * detect_time / len(results):.1f} ms/image)" if results else ""
    summary = (f"total: {len(results)} image(s), {n_det} detection(s), {1000 * detect_time:.1f} ms "
               f"detecting{per_image}, {time.perf_counter() - start:.2f} s wall")
    print(summary + (f"; {failed} error(s)" if failed else ""))
    if args.save_json is not None and results:
        try:
            save_json(args.save_json, results)
        except OSError as err:
            _error(f"cannot write {args.save_json}: {err}")
            return 1
        print(f"wrote {args.save_json}")
    return 1 if failed or not results else 0


def _run_video(args: argparse.Namespace, class_names: Optional[list[str]]) -> int:
    """``--video`` / ``--camera``: detect every frame, write ``--out-video`` and ``--save-json``."""
    from common.fileio import write_json
    from common.video import VideoOutput, open_video
    from evaluate.video import FrameDetections, count_detections, detect_frames
    from evaluate.visualize import draw_on_frame
    from tools.cli import ProgressBar

    camera = args.camera is not None
    try:
        video = open_video(args.camera if camera else args.video)
    except (FileNotFoundError, ValueError) as err:
        _error(err)
        return 1
    with video:
        try:
            detector = _load_detector(args, class_names)
            output = VideoOutput(args.out_video, video.fps, video.size) if args.out_video else None
        except (FileNotFoundError, ValueError, RuntimeError, OSError) as err:
            _error(err)
            return 1
        print(f"{video.name}: {video.size[0]}x{video.size[1]} at {video.fps:g} frames/s"
              + (f", {video.frame_count} frames" if video.frame_count else ""))
        window = _video_window(args, video.name)
        total = video.frame_count
        if args.max_frames is not None:
            total = min(args.max_frames, total or args.max_frames)
        bar = ProgressBar(total)
        frames: list[FrameDetections] = []
        stopped = ""
        start = time.perf_counter()
        try:
            for found, frame in detect_frames(detector, video, batch_size=args.batch_size,
                                              max_frames=args.max_frames):
                frames.append(found)
                if output is not None or window is not None:
                    drawn = draw_on_frame(frame, found.detections.detections)
                    if output is not None:
                        output.write(drawn)
                    if window is not None and not window(drawn):
                        stopped = "the window was closed"
                        break
                bar.update()
        except KeyboardInterrupt:
            stopped = "Ctrl-C"
        except (ValueError, OSError, RuntimeError) as err:
            bar.close()
            if output is not None:
                output.discard()
            _error(err)
            return 1
        finally:
            if window is not None:
                window.close()
        bar.close()
        elapsed = time.perf_counter() - start
        if not frames:
            if output is not None:
                output.discard()
            _error(f"no frame could be read from {video.name}")
            return 1
        try:
            if output is not None:
                output.close()
        except OSError as err:
            _error(f"cannot write {args.out_video}: {err}")
            return 1
    print(f"total: {len(frames)} frame(s), {count_detections(frames)} detection(s) in {elapsed:.2f} s, "
          f"{len(frames) / elapsed:.1f} frames/s" + (f"; stopped: {stopped}" if stopped else ""))
    if output is not None:
        print(f"wrote {args.out_video} ({output.frames_written} frames at {video.fps:g} frames/s)")
    if args.save_json is not None:
        try:
            write_json(args.save_json, [f.to_dict() for f in frames])
        except OSError as err:
            _error(f"cannot write {args.save_json}: {err}")
            return 1
        print(f"wrote {args.save_json}")
    return 130 if stopped == "Ctrl-C" and not camera else 0


class _Window:
    """An OpenCV window showing annotated frames; ``q`` or Esc closes it."""

    def __init__(self, title: str) -> None:
        self.title = title

    def __call__(self, frame: np.ndarray) -> bool:
        """Show ``frame`` (RGB); False once the user asked to stop."""
        import cv2

        cv2.imshow(self.title, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


def _video_window(args: argparse.Namespace, title: str) -> Optional[_Window]:
    """The window for ``--show`` with a video, or None (with one warning when there is no display)."""
    if not args.show:
        return None
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        logging.getLogger("demo").warning("--show ignored: no display")
        return None
    return _Window(title)


def _detect_batch(detector: Detector, batch: list[tuple[str, np.ndarray]], args: argparse.Namespace,
                  results: list[ImageDetections], outputs: set[str]) -> tuple[int, float]:
    """Detect, report and draw one batch; appends to ``results``.

    Returns the number of errors and the detection time in seconds.
    """
    from evaluate.detector import ImageDetections

    tic = time.perf_counter()
    detections = detector.detect([image for _, image in batch])
    elapsed = time.perf_counter() - tic
    errors = 0
    for (name, image), dets in zip(batch, detections):
        height, width = image.shape[:2]
        results.append(ImageDetections(name, width, height, tuple(dets)))
        top = ", ".join(f"{d.class_name} {d.score:.2f}" for d in dets[:5])
        top += ", ..." if len(dets) > 5 else ""
        print(f"{name} ({width}x{height}): {len(dets)} detection(s) in {1000 * elapsed / len(batch):.1f} ms"
              + (f": {top}" if dets else ""))
        try:
            _draw(image, dets, name, args, outputs)
        except (OSError, ValueError) as err:
            _error(f"cannot save the annotated {name}: {err}")
            errors += 1
    return errors, elapsed


def _draw(image: np.ndarray, dets: Sequence[Detection], name: str, args: argparse.Namespace,
          outputs: set[str]) -> None:
    """Save (``--out-dir``) and/or show (``--show``) one annotated image."""
    if args.out_dir is None and not args.show:
        return
    from evaluate.visualize import draw_detections

    out = None
    if args.out_dir is not None:
        stem = Path(name).stem
        out = os.path.join(args.out_dir, f"{stem}-detections.png")
        k = 2
        while out in outputs:  # two inputs with the same name (from different directories)
            out = os.path.join(args.out_dir, f"{stem}-{k}-detections.png")
            k += 1
        outputs.add(out)
    draw_detections(image, dets, out, show=args.show, title=name)


def _check_show(args: argparse.Namespace) -> None:
    """Turn ``--show`` off, with one warning, when no window can be opened."""
    if not args.show:
        return
    from evaluate.visualize import can_show

    if not can_show():
        logging.getLogger("demo").warning("--show ignored: no interactive matplotlib backend (no display?)")
        args.show = False


if __name__ == "__main__":
    sys.exit(main())
