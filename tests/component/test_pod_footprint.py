"""The pods of a probe at rest (``canarywatch bench footprint``'s measurement): a camera
pod and a viewer pod judging snapshot and MJPEG frames load numpy and libjpeg, not
OpenCV or FFmpeg (~50 MiB between them). Which libraries are mapped is asserted, not
how much memory they take (the machine's allocator and load vary)."""

from __future__ import annotations

import os

import numpy as np

from canarywatch.bench.footprint import native_libraries, pod_footprints


def test_native_libraries_are_read_from_the_memory_map() -> None:
    assert np.zeros(1).size == 1 and "numpy" in native_libraries(os.getpid())


def test_idle_camera_and_viewer_pods_load_neither_opencv_nor_ffmpeg() -> None:
    pods = pod_footprints(("acme-7",), ("good",), settle_s=0.5, timeout_s=60)
    assert sorted(pod.role for pod in pods) == ["camera", "viewer"]
    for pod in pods:
        assert pod.rss_mib > 0 and pod.peak_mib >= pod.rss_mib
        assert "cv2" not in pod.native and "av" not in pod.native, f"the {pod.role} pod loaded {pod.native}"
        assert {"numpy", "simplejpeg"} <= set(pod.native), pod
