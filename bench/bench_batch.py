"""Cohort throughput of `napari-brain-dl batch`: 1 vs 2 local Dask workers, then a scheduler address.

Builds a cohort of symbolic links to ../shared/data in a temporary folder (nothing copied into
the repository): brats_gli_00001 (FLAIR, T1c, T1, T2) and the four BraTS 2015 cases (FLAIR,
T1c), runs the real ``brats-tumor-seg`` model over it with 1 and 2 worker processes, and once
more through a separately started ``distributed.LocalCluster`` passed by address (as
``--scheduler`` does), checking that the cohort CSV is the same every time.

    /work/venv/bin/python bench/bench_batch.py [--subjects 5] [--task segment] [--model ID]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from napari_brain_dl.core.batch import CSV_NAME, local_cluster_options, run_batch

DATA = Path(os.environ.get("NAPARI_BRAIN_DL_TEST_DATA", Path(__file__).resolve().parents[2] / "shared/data"))


def build_cohort(root: Path, count: int) -> Path:
    """Folder-per-subject cohort of symlinks (BraTS 2023 case first, then BraTS 2015 cases)."""
    gli = DATA / "brats_gli_00001"
    subjects = {"gli_00001": [gli / f"{c}.nii.gz" for c in ("t2f", "t1c", "t1n", "t2w")]}
    for case in sorted((DATA / "brats2015_flair_t1c").iterdir()):
        subjects[case.name] = [case / "Flair_subtrMeanDivStd.nii.gz", case / "T1c_subtrMeanDivStd.nii.gz"]
    for name, files in list(subjects.items())[:count]:
        (root / name).mkdir(parents=True)
        for f in files:
            (root / name / f.name).symlink_to(f)
    return root


def timed(label: str, cohort: Path, out: Path, task: str, options: dict, **kw: object) -> tuple[float, str]:
    start = time.perf_counter()
    result = run_batch(cohort, out, task, options, **kw)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    n = len(result.rows)
    print(f"{label:<34} {seconds:7.1f} s  {n / seconds * 60:5.2f} subjects/min  failed {result.failed}")
    return seconds, (out / CSV_NAME).read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=5)
    parser.add_argument("--task", default="segment")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    options = {"device": "cpu", **({"model": args.model} if args.model else {})}
    with tempfile.TemporaryDirectory() as tmp:
        cohort = build_cohort(Path(tmp) / "cohort", args.subjects)
        print(f"{args.subjects} subjects, task {args.task}, {os.cpu_count()} CPU cores")
        one, csv1 = timed("1 worker (LocalCluster, processes)", cohort, Path(tmp) / "w1", args.task, options,
                          workers=1)
        two, csv2 = timed("2 workers (LocalCluster, processes)", cohort, Path(tmp) / "w2", args.task, options,
                          workers=2)
        from distributed import LocalCluster

        with LocalCluster(**local_cluster_options(2, processes=True)) as cluster:
            threads = {"torch_threads": max(1, (os.cpu_count() or 1) // 2)}
            _, csv3 = timed(f"--scheduler {cluster.scheduler_address}", cohort, Path(tmp) / "w3", args.task,
                            {**options, **threads}, scheduler=cluster.scheduler_address)
        print(f"speed-up 2 vs 1 worker: {one / two:.2f}x")
        print(f"same CSV (1 worker / 2 workers / scheduler address): {csv1 == csv2 == csv3}")


if __name__ == "__main__":
    main()
