"""Every job class by command name."""

from __future__ import annotations

from .base import Job
from .explain import ClassifyJob, ExplainJob
from .files import ConvertJob
from .models import RunModelJob, SkullstripJob
from .super_resolve import SuperResolveJob
from .synthesize import SynthesizeJob
from .tumor import ClickSegmentJob, SegmentJob

#: Jobs in the order ``napari-brain-dl --help`` lists them.
JOBS: dict[str, type[Job]] = {cls.command: cls for cls in (
    ConvertJob, SkullstripJob, RunModelJob, SegmentJob, ClickSegmentJob, ClassifyJob, ExplainJob,
    SynthesizeJob, SuperResolveJob)}
#: Jobs whose results carry a provenance sidecar, so `rerun` may rebuild them (classify writes JSON only).
RERUNNABLE: dict[str, type[Job]] = {name: cls for name, cls in JOBS.items() if name != "classify"}
