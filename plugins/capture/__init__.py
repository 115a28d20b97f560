"""Capture plugins. FFmpeg's decoder chatter ("overread 8", …) would break the one-line error rule,
so OpenCV's FFmpeg and its own logging are quieted before cv2 loads; errors are reported by us."""

import os

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
