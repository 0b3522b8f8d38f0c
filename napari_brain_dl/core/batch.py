"""Run one task over a cohort on Dask: resumable, failures isolated, one CSV of volumes and predictions.

Each subject is one Dask task (`run_subject`) writing into a hidden ``.ID.partial-*`` folder
of the output folder; only when everything (images, provenance sidecars, ``done.json``) is
written is the folder renamed to ``ID/`` in one atomic step. A subject is finished when
``ID/done.json`` exists: a new run skips it. A failure is caught inside the task and becomes
a row with ``status=failed`` and the reason; the other subjects continue. Partial folders left
by a killed run are removed at the next start. The CSV (``cohort.csv``) is rebuilt from the
subjects' rows, sorted by id, after every run, interrupted ones included.

Batch writes only into a folder it made its own: a new or empty output folder gets the marker
``.napari-brain-dl-batch``; a folder holding anything else is refused, and so is one that is,
lies inside or contains the input folder. Nothing it did not write is ever removed: a subject
folder without ``done.json`` (not a result of batch) fails that subject with a sentence.

The default cluster is a `distributed.LocalCluster` (one worker process per ``workers``, one
thread each); ``scheduler`` connects to a running dask.distributed scheduler instead (its
workers must see the same file system).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cohort import Subject, discover
from .extras import require
from .output_rules import check_outputs_apart
from .progress import CancelToken, ProgressCallback

TASKS = ("segment", "skullstrip", "parcellate", "synthesize", "super-resolve", "classify")
DONE = "done.json"
MARKER = ".napari-brain-dl-batch"
CSV_NAME = "cohort.csv"
FIRST_COLUMNS = ("id", "subject", "session", "status", "error", "task", "model_id", "outputs", "inputs")


@dataclass
class BatchResult:
    """What a batch run did: the CSV, every row, and how many subjects ran, were skipped or failed."""

    csv_path: Path
    rows: list[dict[str, Any]]
    ran: int
    skipped: int
    failed: int
    interrupted: bool = False


def run_subject(subject: Subject, task: str, output_dir: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run `task` on one subject; never raises for a bad subject (the row says ``failed``).

    The outputs appear under ``output_dir/ID/`` all at once, with ``done.json`` holding the row.
    """
    out = Path(output_dir)
    final = out / subject.id
    if (final / DONE).is_file():
        return json.loads((final / DONE).read_text(encoding="utf-8"))
    row: dict[str, Any] = {
        "id": subject.id, "subject": subject.subject, "session": subject.session or "", "task": task,
        "inputs": ";".join(str(Path(p).resolve()) for p in subject.files.values()),
    }
    if options.get("torch_threads"):  # one worker's share of the cores, so workers do not oversubscribe
        import torch

        torch.set_num_threads(int(options["torch_threads"]))
    if final.exists():  # batch renames a finished folder into place with done.json: not ours
        return {**row, "status": "failed", "outputs": "", "error": (
            f"{final} exists but holds no finished result (no {DONE}); batch never removes what it "
            "did not write: move it away to run this subject.")}
    partial = out / f".{subject.id}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    try:
        from . import batch_tasks

        values = batch_tasks.RUNNERS[task](subject, partial, final, options)
        files = sorted(p.relative_to(partial) for p in partial.rglob("*") if p.is_file())
        row.update(status="ok", error="", **values)
        names = {f.as_posix() for f in files}  # results, not their provenance sidecars
        kept = [f for f in files if not (f.suffix == ".json" and f.as_posix()[:-5] in names)]
        row["outputs"] = ";".join(f"{subject.id}/{f.as_posix()}" for f in kept)
        (partial / DONE).write_text(json.dumps(row, indent=2, default=str), encoding="utf-8")
        os.rename(partial, final)  # fails, rather than replaces, if a folder appeared meanwhile
    except Exception as exc:  # one subject's failure is recorded, the cohort continues
        row.update(status="failed", error=_one_sentence(exc), outputs="")
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return row


def _one_sentence(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return f"{type(exc).__name__}: {' '.join(text.split())}"[:500]


def claim_output_folder(input_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> Path:
    """Make `output_dir` batch's own (new or empty folder: marked) or confirm that it already is.

    Raises:
        ValueError: The folder is, lies inside or contains `input_dir`, is a file, or already
            holds files that batch did not write.
    """

    out = Path(output_dir)
    check_outputs_apart({"output_dir": out}, [input_dir], folders=("output_dir",))
    if (out / MARKER).is_file():
        return out
    if out.exists() and not out.is_dir():
        raise ValueError(f"The output folder {out} is a file; choose a folder. Nothing was run.")
    if out.is_dir() and any(out.iterdir()):
        raise ValueError(f"The output folder {out} already holds files that batch did not write; choose a "
                         "new or empty folder. Nothing was run.")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"written_by": "napari-brain-dl batch"}) + "\n", encoding="utf-8")
    return out


def clean_partials(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove partial subject folders left by a run that was killed; return what was removed."""
    removed = []
    for path in Path(output_dir).glob(".*.partial-*"):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def local_cluster_options(workers: int = 1, processes: bool = True) -> dict[str, Any]:
    """`distributed.LocalCluster` keywords: one thread per worker, every server on loopback only.

    Worker processes talk over TLS with temporary credentials made for this cluster alone
    (mutual authentication): another local user reaching the loopback ports cannot submit
    work. Without ``processes`` the workers are threads talking over ``inproc://`` (no TCP at
    all, apart from the diagnostics HTTP servers dask always starts, bound to 127.0.0.1).
    """
    options: dict[str, Any] = {"n_workers": max(1, workers), "threads_per_worker": 1,
                               "processes": processes, "dashboard_address": "127.0.0.1:0",
                               "worker_dashboard_address": "127.0.0.1:0",
                               "scheduler_kwargs": {"dashboard": False}}
    if processes:
        options.update(host="127.0.0.1", security=True)  # True: temporary self-signed TLS credentials
    return options


def _connect(scheduler: str | None, workers: int, processes: bool) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="20s"), None
    cluster = LocalCluster(**local_cluster_options(workers, processes))
    return Client(cluster), cluster


def run_batch(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    task: str,
    options: dict[str, Any] | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    processes: bool = True,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> BatchResult:
    """Run `task` on every subject of `input_dir`; write ``output_dir/cohort.csv``.

    Args:
        input_dir: BIDS dataset or one folder per subject (see `core.cohort.discover`).
        output_dir: A new or empty folder (created and marked as batch's own), or one an
            earlier batch wrote: its finished subjects are skipped (resume).
        task: One of `TASKS`.
        options: Task options: ``model``, ``device`` (default cpu), ``target`` (synthesize),
            ``contrast`` (skullstrip, parcellate, super-resolve), ``method``, ``spacing``,
            ``torch_threads`` (default with several local workers: the cores shared between them).
        workers: Local worker processes (ignored with `scheduler`).
        scheduler: Address of a dask.distributed scheduler (``tcp://host:8786``, ``inproc://...``).
        processes: Local workers as processes (True) or threads in this process (False).
        progress: ``progress(done, total, text)`` after each subject.
        cancel: Stops submitting and waiting at the next finished subject (the CSV is still written).
        on_row: Called with each finished subject's row.

    Example:
        >>> res = run_batch("cohort/", "out/", "segment", workers=2)  # doctest: +SKIP
        >>> res.csv_path, res.failed  # doctest: +SKIP
        (PosixPath('out/cohort.csv'), 1)
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")

    require("distributed")
    if processes and not scheduler:
        require("cryptography")  # TLS credentials of the local cluster
    options = {"device": "cpu", **(options or {})}
    if scheduler is None and workers > 1:
        options.setdefault("torch_threads", max(1, (os.cpu_count() or 1) // workers))
    subjects = discover(input_dir)
    out = claim_output_folder(input_dir, output_dir)
    clean_partials(out)
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for s in subjects:
        done = out / s.id / DONE
        if done.is_file():
            rows[s.id] = json.loads(done.read_text(encoding="utf-8"))
        else:
            todo.append(s)
    report = progress or (lambda d, t, s: None)
    total, skipped = len(subjects), len(rows)
    report(skipped, total, f"{skipped} finished subject(s) skipped")
    interrupted = False
    if todo:
        interrupted = _run_dask(todo, task, out, options, workers, scheduler, processes, rows,
                                lambda text: report(len(rows), total, text), cancel, on_row)
    for s in subjects:
        rows.setdefault(s.id, {"id": s.id, "subject": s.subject, "session": s.session or "",
                               "task": task, "status": "not run", "error": "interrupted"})
    ordered = [rows[s.id] for s in subjects]
    csv_path = write_csv(ordered, out / CSV_NAME)
    failed = sum(r["status"] == "failed" for r in ordered)
    return BatchResult(csv_path, ordered, len(todo), skipped, failed, interrupted)


def _run_dask(todo: list[Subject], task: str, out: Path, options: dict[str, Any], workers: int,
              scheduler: str | None, processes: bool, rows: dict[str, dict[str, Any]],
              say: Callable[[str], None], cancel: CancelToken | None,
              on_row: Callable[[dict[str, Any]], None] | None) -> bool:
    """Submit every subject, collect rows as they finish; True when cancelled before the end."""
    from distributed import as_completed

    client, cluster = _connect(scheduler, workers, processes)
    try:
        futures = {client.submit(run_subject, s, task, str(out.resolve()), options, pure=False,
                                 key=f"brain-dl-{task}-{s.id}-{uuid.uuid4().hex[:6]}"): s for s in todo}
        pending = as_completed(futures)
        for future in pending:
            subject = futures[future]
            try:
                row = future.result()
            except Exception as exc:  # the worker died (out of memory, crash): that subject only
                row = {"id": subject.id, "subject": subject.subject, "session": subject.session or "",
                       "task": task, "status": "failed", "error": _one_sentence(exc)}
            rows[subject.id] = row
            say(f"{subject.id}: {row['status']}" + (f" ({row['error']})" if row.get("error") else ""))
            if on_row is not None:
                on_row(row)
            if cancel is not None and cancel.cancelled:
                for f in futures:
                    f.cancel()
                return True
        return False
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def write_csv(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write the cohort CSV atomically: fixed first columns, then every value column, sorted."""
    from .io import atomic_output

    extra = sorted({k for r in rows for k in r} - set(FIRST_COLUMNS))
    with atomic_output(path, overwrite=True) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*FIRST_COLUMNS, *extra], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
    return Path(path)


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else value
