"""Run a model on Volumes the way its card says, and land the result on the input's grid.

Steps: inputs stacked in card order -> exact reorientation -> conform/resample
(kept invertible) -> intensity normalisation -> crop to the head -> one pass or
MONAI sliding window (inference mode, channels-last 3D on the CPU, AMP on CUDA,
progress and cancel between layers/windows, out-of-memory fallback) -> uncrop
-> exact inverse resampling -> inverse reorientation -> postprocessing.
Every output has the input's shape and affine and carries provenance.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import __version__
from . import device as dev
from .errors import InputError
from .models import prepost
from .models.card import ModelCard
from .models.loaders import LoadedModel, load_model
from .models.meshnet import MeshNet
from .models.registry import resolve_model
from .progress import CancelToken, ProgressCallback, check
from .volume import Volume, reorient, restore_orientation

_CACHE: dict[tuple[Any, ...], LoadedModel] = {}


@dataclass
class Prediction:
    """Model outputs on the input grid, in output order, plus provenance.

    Attributes:
        outputs: {name: Volume}; labels/image outputs hold one entry, probabilities one per channel.
        provenance: model id, weights sha256, parameters, package version, device, seconds.
    """

    outputs: dict[str, Volume]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def primary(self) -> Volume:
        """The first output (the label map, the image, or the first probability channel)."""
        return next(iter(self.outputs.values()))


def get_model(
    model: str | ModelCard | LoadedModel,
    device: str | torch.device = "auto",
    *,
    allow_random_weights: bool = False,
    trusted: bool | None = None,
) -> LoadedModel:
    """Load a model once per (card, weights, device) and keep it.

    Example:
        >>> m = get_model("/data/brainchop_models/mindgrab", device="cpu")  # doctest: +SKIP
        >>> m is get_model("/data/brainchop_models/mindgrab", device="cpu")  # doctest: +SKIP
        True
    """
    if isinstance(model, LoadedModel):
        return model
    card = resolve_model(model)
    torch_device = dev.choose_device(device)
    key = (card.id, str(card.weights_path), card.folder, str(torch_device), allow_random_weights, trusted)
    if key not in _CACHE:
        _CACHE[key] = load_model(
            card, torch_device, trusted=trusted, allow_random_weights=allow_random_weights
        )
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every cached model (frees memory)."""
    _CACHE.clear()


def predict(
    model: str | ModelCard | LoadedModel,
    inputs: Volume | Sequence[Volume],
    *,
    device: str | torch.device = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    notify: Callable[[str], None] | None = None,
    params: dict[str, Any] | None = None,
) -> Prediction:
    """Run `model` on `inputs` (in the card's input order) and return outputs on the input grid.

    Args:
        model: Loaded model, card, card/weights/folder path, or model id.
        inputs: One Volume per card input, in card order; the first defines the output grid.
        device: auto | cpu | cuda | mps.
        progress: ``progress(done, total, text)`` callback.
        cancel: Token polled between layers / windows.
        notify: Receives plain sentences (e.g. out-of-memory fallbacks).
        params: Overrides of the card's ``inference`` settings (crop, margin, roi_size, overlap,
            channels_last, amp).

    Raises:
        ValueError: Wrong number of inputs, or inputs without a shared grid.
        Cancelled: `cancel` was set.

    Example:
        >>> t1 = load("t1_crop.nii.gz")  # doctest: +SKIP
        >>> pred = predict("/data/brainchop_models/mindgrab", t1, device="cpu")  # doctest: +SKIP
        >>> pred.primary.same_grid(t1), pred.provenance["model_id"]  # doctest: +SKIP
        (True, 'mindgrab')
    """
    start = time.perf_counter()
    loaded = get_model(model, device)
    card = loaded.card
    vols = [inputs] if isinstance(inputs, Volume) else list(inputs)
    ref = check_inputs(card, vols)
    settings = {
        "crop": "head",
        "margin": 16,
        "mode": "whole",
        "overlap": 0.25,
        "sw_batch_size": 1,
        "channels_last": True,
        "amp": True,
        "divisible": 1,
        **card.inference,
        **(params or {}),
    }
    report = progress or (lambda d, t, s: None)

    # --- geometry: exact reorientation, then an invertible resampling
    data, grid, transform = preprocess(card, vols)
    check(cancel)
    box = (
        prepost.foreground_bbox(data, int(settings["margin"]), int(settings["divisible"]))
        if settings["crop"] == "head"
        else tuple(slice(0, n) for n in data.shape[1:])
    )
    crop = np.ascontiguousarray(data[(slice(None), *box)])
    context = {"total_voxels": int(np.prod(data.shape[1:])), "background": _outside_value(data, box)}

    # --- the network, with out-of-memory fallback
    torch_device = loaded.device
    holder: dict[str, Any] = {}

    def attempt(run_dev: torch.device, roi: tuple[int, ...] | None) -> np.ndarray:
        holder["device"], holder["roi"] = run_dev, roi  # a fallback runs a copy: the cache stays
        return _forward(loaded.on(run_dev), crop, run_dev, roi, settings, report, cancel, context)

    roi = None
    if settings["mode"] == "sliding_window":  # a window larger than the crop only pads: shrink it
        step = max(1, int(settings["divisible"]))
        roi = tuple(
            min(int(r), -(-s // step) * step)
            for r, s in zip(settings["roi_size"], crop.shape[1:], strict=True)
        )
    roi = guard_memory(card, crop.shape, roi, torch_device, notify, amp=bool(settings["amp"]))
    out = dev.run_with_fallback(attempt, torch_device, roi, notify)
    check(cancel)

    # --- back onto the input grid, then postprocessing
    outputs = _restore(card, out, box, data.shape[1:], grid, transform, ref)
    seconds = time.perf_counter() - start
    prov = _provenance(loaded, vols, settings, holder, box, seconds)
    result = {
        name: ref.with_data(arr, name=f"{ref.name}_{name}", provenance=prov, model_id=card.id)
        for name, arr in outputs.items()
    }
    report(1, 1, "done")
    return Prediction(result, prov)


class ResourceError(InputError):
    """A run would not fit in memory; the message says how much it needs and what to do."""


#: Share of the free memory a run may plan to use (the rest is left to the viewer and the OS).
MEMORY_SHARE = 0.8
#: Smallest sliding window the guard shrinks to before refusing.
MIN_WINDOW = 32


def estimate_memory(card: ModelCard, shape: Sequence[int], roi: Sequence[int] | None = None,
                    half: bool = False) -> dict[str, int]:
    """Rough peak bytes of one run: ``host`` (arrays around the network) and ``network`` (activations).

    `shape` is (channels, X, Y, Z) of the cropped, preprocessed input; `roi` the sliding window
    (None: the whole crop in one pass). Activations are counted as four live feature maps of the
    card's width (``architecture.channels``, else 16) over the window: an overestimate for thin
    networks, the right order for U-Nets.

    Example:
        >>> estimate_memory(card, (1, 256, 256, 256))["network"] / 2**30  # doctest: +SKIP
        8.0
    """
    channels, *spatial = (int(n) for n in shape)
    voxels = math.prod(spatial)
    outputs = max(len(card.output.get("channels") or []), len(card.labels), 2)
    host = 4 * voxels * (2 * channels + 3 * outputs)  # input, stacked copy, scores, uncrop, inverse
    window = math.prod(int(r) for r in roi) if roi else voxels
    width = card.architecture.get("channels")
    width = width if isinstance(width, int) and width > 0 else 16
    network = (2 if half else 4) * window * (4 * width + channels + outputs)
    if roi:
        host += 4 * voxels * outputs  # the blended output of the sliding window
    return {"host": int(host), "network": int(network)}


def guard_memory(card: ModelCard, shape: Sequence[int], roi: tuple[int, ...] | None, device: torch.device,
                 notify: Callable[[str], None] | None, amp: bool = True) -> tuple[int, ...] | None:
    """Check the run fits before it starts: shrink the sliding window, or refuse with the numbers.

    Host memory holds the arrays (and the network on the CPU); a GPU holds the network. A
    sliding window is halved (largest side first, down to `MIN_WINDOW`) until it fits; a
    whole-volume model that does not fit is refused.

    Raises:
        ResourceError: Even the smallest window (or the arrays alone) would not fit.
    """
    from .io import available_memory_bytes

    say = notify or (lambda text: None)
    host_free = available_memory_bytes()
    gpu_free = _gpu_free(device)
    half = amp and device.type == "cuda"

    def fits(window: tuple[int, ...] | None) -> bool:
        need = estimate_memory(card, shape, window, half)
        on_host = need["host"] + (need["network"] if gpu_free is None else 0)
        ok_host = not host_free or on_host <= MEMORY_SHARE * host_free
        ok_gpu = gpu_free is None or need["network"] <= MEMORY_SHARE * gpu_free
        return ok_host and ok_gpu

    if fits(roi):
        return roi
    window = list(roi) if roi else None
    while window is not None and max(window) > MIN_WINDOW:
        axis = int(np.argmax(window))
        window[axis] = max(MIN_WINDOW, window[axis] // 2)
        if fits(tuple(window)):
            say(f"The volume {tuple(shape[1:])} is large for the free memory: the sliding window was shrunk "
                f"from {tuple(roi or ())} to {tuple(window)}.")
            return tuple(window)
    need = estimate_memory(card, shape, tuple(window) if window else None, half)
    where = (f"{_size(need['network'])} of GPU memory ({_size(gpu_free or 0)} free)"
             if gpu_free is not None and need["network"] > MEMORY_SHARE * gpu_free
             else f"{_size(need['host'] + need['network'])} of memory ({_size(host_free)} free)")
    raise ResourceError(
        f"Running {card.id} on a {' x '.join(map(str, shape[1:]))} volume needs about {where}; "
        "crop or downsample the scan, or close other programs, then try again.")


def _size(n: float) -> str:
    """Bytes as "3.2 GiB" or "48 MiB"."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def _gpu_free(device: torch.device) -> int | None:
    """Free memory of a CUDA device in bytes (None for the CPU or when unknown)."""
    if device.type != "cuda":
        return None
    try:
        return int(torch.cuda.mem_get_info(device)[0])
    except (RuntimeError, AssertionError):
        return None


def check_inputs(card: ModelCard, vols: Sequence[Volume]) -> Volume:
    """The first input, after checking there is one Volume per card input, all on its grid.

    Raises:
        ValueError: Wrong number of inputs, or inputs without a shared grid.
    """
    if len(vols) != len(card.inputs):
        raise ValueError(
            f"Model {card.id!r} needs {len(card.inputs)} input(s) in this order: "
            f"{', '.join(card.inputs)}; got {len(vols)}."
        )
    ref = vols[0]
    for name, vol in zip(card.inputs, vols, strict=True):
        if not vol.same_grid(ref, atol=1e-3):
            raise ValueError(
                f"Input {name} ({vol.name}) is not on the grid of {card.inputs[0]} ({ref.name}); "
                "resample or co-register the contrasts first."
            )
    return ref


def preprocess(
    card: ModelCard, vols: Sequence[Volume]
) -> tuple[np.ndarray, prepost.GridMap, np.ndarray | None]:
    """Inputs stacked in card order, reoriented exactly and preprocessed as the card says.

    Returns (C, X, Y, Z) float32 data, the invertible grid map and the orientation transform
    of the inputs (None when the card keeps the input's orientation).
    """
    transform, arrays, oriented = None, [], vols[0]
    for vol in vols:
        oriented, transform = (
            reorient(vol, tuple(card.orientation.upper())) if card.orientation else (vol, None)  # type: ignore[arg-type]
        )
        arrays.append(np.asarray(oriented.data, dtype=np.float32))
    data = np.nan_to_num(np.stack(arrays))
    shape = data.shape[1:]
    grid = prepost.GridMap(shape, oriented.affine, shape, oriented.affine)  # type: ignore[arg-type]
    for step in card.preprocessing:
        if step["op"] in ("conform", "resample"):
            grid = prepost.target_grid(data.shape, oriented.affine, step)
            data = grid.forward(data)
        else:
            data = prepost.intensity(data, step)
    return data, grid, transform


def _forward(
    loaded: LoadedModel,
    crop: np.ndarray,
    device: torch.device,
    roi: tuple[int, ...] | None,
    settings: dict[str, Any],
    report: ProgressCallback,
    cancel: CancelToken | None,
    context: dict[str, Any],
) -> np.ndarray:
    module = loaded.module
    amp = dev.use_amp(device, bool(settings["amp"]))
    channels_last = (
        bool(settings["channels_last"])
        and device.type == "cpu"
        and not isinstance(module, torch.jit.ScriptModule)
    )
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    if channels_last:
        module.to(memory_format=fmt)
    x = torch.from_numpy(crop)[None].to(device).contiguous(memory_format=fmt)
    with torch.inference_mode(), dev.autocast(device, amp):
        if roi is None:
            if isinstance(module, MeshNet):

                def step(i: int, n: int) -> None:
                    report(i, n + 1, f"layer {i}/{n}")
                    check(cancel)

                bg = torch.as_tensor(context["background"], dtype=x.dtype, device=device)
                y = module(x, step, total_voxels=context["total_voxels"], background=bg)
            else:
                report(0, 2, "running the model")
                y = _padded(module, x)
        else:
            y = _sliding_window(module, x, roi, settings, report, cancel)
    if isinstance(y, (tuple, list)):
        y = y[0]
    return y[0].float().cpu().contiguous().numpy()


def _padded(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run `module`, zero-padding x up to the multiple its ``divisor`` attribute asks for."""
    div = int(getattr(module, "divisor", 1))
    sizes = x.shape[2:]
    pads = [(-n) % div for n in sizes]
    if not any(pads):
        return module(x)
    flat = [p for pad in reversed(pads) for p in (0, pad)]
    y = module(torch.nn.functional.pad(x, flat))
    y = y[0] if isinstance(y, (tuple, list)) else y
    return y[(..., *(slice(0, n) for n in sizes))]


def _outside_value(data: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Per-channel median of the voxels outside the crop box (0 when there are none)."""
    outside = np.ones(data.shape[1:], bool)
    outside[box] = False
    if not outside.any():
        return np.zeros(data.shape[0], np.float32)
    return np.array([np.median(data[c][outside][::7]) for c in range(data.shape[0])], np.float32)


def _sliding_window(
    module: torch.nn.Module,
    x: torch.Tensor,
    roi: tuple[int, ...],
    settings: dict[str, Any],
    report: ProgressCallback,
    cancel: CancelToken | None,
) -> torch.Tensor:
    from monai.inferers import sliding_window_inference

    overlap = float(settings["overlap"])
    batch = int(settings["sw_batch_size"])
    counts = [
        1 if s <= r else math.ceil((s - r) / max(1, int(r * (1 - overlap)))) + 1
        for s, r in zip(x.shape[2:], roi, strict=True)
    ]
    total = max(1, math.ceil(math.prod(counts) / batch))
    done = [0]

    def predictor(window: torch.Tensor) -> torch.Tensor:
        check(cancel)
        out = _padded(module, window)
        done[0] += 1
        report(done[0], total + 1, f"window {done[0]}/{total}")
        return out[0] if isinstance(out, (tuple, list)) else out

    return sliding_window_inference(
        x, roi, batch, predictor, overlap=overlap, mode=str(settings.get("blend", "gaussian"))
    )


def _restore(
    card: ModelCard,
    out: np.ndarray,
    box: tuple[slice, ...],
    full_shape: tuple[int, ...],
    grid: prepost.GridMap,
    transform: np.ndarray | None,
    ref: Volume,
) -> dict[str, np.ndarray]:
    steps = [s["op"] for s in card.postprocessing]
    kind = card.output_kind
    if "softmax" in steps:
        out = prepost.softmax(out)
    if "sigmoid" in steps:
        out = prepost.sigmoid(out)
    k = out.shape[0]

    def uncrop(arr: np.ndarray, fill: np.ndarray | float) -> np.ndarray:
        full = np.empty((arr.shape[0], *full_shape), dtype=arr.dtype)
        full[...] = np.asarray(fill, dtype=arr.dtype).reshape(-1, 1, 1, 1) if np.ndim(fill) else fill
        full[(slice(None), *box)] = arr
        return full

    def back(arr: np.ndarray) -> np.ndarray:
        return restore_orientation(arr, transform) if transform is not None else arr

    if kind == "labels" and "argmax" in steps:
        if grid.identity or k > 8:
            labels = uncrop(out.argmax(axis=0).astype(np.uint8 if k < 256 else np.int16)[None], 0)
            labels = grid.inverse(labels, order=0)[0]
        else:  # resample scores linearly, then decide: smoother borders than nearest labels
            fill = np.full(k, out.min(), np.float32)
            fill[0] = out.max()
            labels = grid.inverse(uncrop(out.astype(np.float32), fill)).argmax(axis=0).astype(np.uint8)
        labels = np.ascontiguousarray(back(labels))
        for op in steps:
            if op == "largest_component":
                labels = prepost.largest_component(labels)
            elif op == "fill_holes":
                labels = prepost.fill_holes(labels)
        return {"labels": labels}
    restored = np.ascontiguousarray(
        back(np.moveaxis(grid.inverse(uncrop(out.astype(np.float32), 0.0)), 0, -1))
    )
    restored = np.moveaxis(restored, -1, 0)
    if kind == "labels" and "brats_regions" in steps:
        opts = next(s for s in card.postprocessing if s["op"] == "brats_regions")
        return {"labels": prepost.brats_labels(restored, opts)}
    names = list(card.output.get("channels") or [f"ch{i}" for i in range(k)])
    if kind == "image" and k == 1:
        return {"image": restored[0]}
    return {names[i] if i < len(names) else f"ch{i}": restored[i] for i in range(k)}


def _provenance(
    loaded: LoadedModel,
    vols: list[Volume],
    settings: dict[str, Any],
    holder: dict[str, Any],
    box: tuple[slice, ...],
    seconds: float,
) -> dict[str, Any]:

    card = loaded.card
    return {
        "model_id": card.id,
        "model_name": card.name,
        "task": card.task,
        "weights_sha256": loaded.sha256,
        "card_path": str(card.card_path) if card.card_path else None,
        "inputs": {name: str(v.meta.get("path", v.name)) for name, v in zip(card.inputs, vols, strict=True)},
        "parameters": {
            **{k: v for k, v in settings.items() if isinstance(v, (str, int, float, bool, list))},
            "roi_size": list(holder["roi"]) if holder.get("roi") else None,
            "crop_box": [[s.start, s.stop] for s in box],
            "preprocessing": card.preprocessing,
            "postprocessing": card.postprocessing,
        },
        "package_version": __version__,
        "torch_version": torch.__version__,
        "device": str(holder.get("device", loaded.device)),
        "seconds": round(seconds, 3),
        "intended_use": card.intended_use,
        "license": card.license,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
