"""Standalone mode: the camera/viewer/incident/kill-switch pipeline without Kubernetes."""

from canarywatch.standalone.config import ConfigError, StandaloneConfig, load_config
from canarywatch.standalone.pipeline import Pipeline, ResumeRefused, RunResult

__all__ = ["ConfigError", "Pipeline", "ResumeRefused", "RunResult", "StandaloneConfig", "load_config"]
