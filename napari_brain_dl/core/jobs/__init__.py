"""One job per task: the options as a dataclass, ``run()`` writes results with provenance.

The command line parses into a job and runs it, `batch` builds the same job per subject, and
`rerun` rebuilds it from a sidecar's options (`core.jobs.rerun`).

Example:
    >>> from napari_brain_dl.core.jobs import SegmentJob
    >>> job = SegmentJob(flair="t2f.nii.gz", t1c="t1c.nii.gz", output="tumor.nii.gz")  # doctest: +SKIP
    >>> job.run().summary  # doctest: +SKIP
    ['tumor.nii.gz: whole tumour 132.4 mL, tumour core 34.8 mL, enhancing 21.8 mL']
"""

from .base import Job, JobContext, JobResult
from .explain import ClassifyJob, ExplainJob
from .files import ConvertJob
from .models import RunModelJob, SkullstripJob
from .registry import JOBS, RERUNNABLE
from .super_resolve import SuperResolveJob
from .synthesize import SynthesizeJob
from .tumor import ClickSegmentJob, SegmentJob

__all__ = ["JOBS", "RERUNNABLE", "ClassifyJob", "ClickSegmentJob", "ConvertJob", "ExplainJob", "Job",
           "JobContext", "JobResult", "RunModelJob", "SegmentJob", "SkullstripJob", "SuperResolveJob",
           "SynthesizeJob"]
