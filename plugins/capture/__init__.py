"""Capture plugins. FFmpeg's decoder chatter ("overread 8", …) and OpenCV's own ``[ERROR:0@…]`` /
``[ WARN:0@…]`` lines (an unreadable GIF, a missing camera) would break the one-line error rule, so
both are silenced here; what goes wrong is reported by the plugins as one :class:`SourceError` line.
The environment variables cover a cv2 not loaded yet; ``setLogLevel`` covers one already loaded (the
engine imports cv2 before any plugin)."""

import os

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

import cv2  # noqa: E402 - after the environment it reads

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
