"""Heatmap building blocks on small synthetic inputs: exact, fast, hooks always removed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from napari_brain_dl.core.explain import checks as ck
from napari_brain_dl.core.explain.frame import prepare
from napari_brain_dl.core.explain.gradcam import LayerError, class_target, gradcam, region_target
from napari_brain_dl.core.explain.occlusion import count_monai_default_passes, occlusion
from napari_brain_dl.core.models.card import ModelCard
from napari_brain_dl.core.models.classifier import TumorClassifier
from napari_brain_dl.core.volume import Volume


class Detector(nn.Module):
    """Logit from the 4 brightest cells of a 4^3-pooled smoothed channel 0 (a 'lesion detector')."""

    default_cam_layer = "features"

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU())
        with torch.no_grad():
            self.features[0].weight.zero_()
            self.features[0].weight[0, 0] = 1 / 27
            self.features[0].weight[1, 0] = -1 / 27
            self.features[0].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = nn.functional.avg_pool3d(self.features(x)[:, :1], 4).flatten(1)
        s = 3 * (f.topk(4, dim=1).values.mean(1) - 2)  # healthy tissue (1) -> negative logit
        return torch.stack([-s, s], 1)


@pytest.fixture(scope="module")
def lesion() -> tuple[torch.Tensor, np.ndarray]:
    """A 48^3 'head' (sphere of 1s) holding a bright 10^3 lesion; zero background."""
    z, y, x = np.mgrid[:48, :48, :48]
    img = (((z - 24) ** 2 + (y - 24) ** 2 + (x - 24) ** 2) < 20**2).astype(np.float32)
    mask = np.zeros_like(img, bool)
    mask[28:38, 12:22, 26:36] = True
    img[mask] = 4.0
    return torch.from_numpy(img)[None, None], mask


def test_brute_occlusion_equals_captum() -> None:
    from captum.attr import Occlusion

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv3d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(3, 2)
    ).eval()
    x = torch.randn(1, 2, 24, 32, 16)
    ours = occlusion(lambda b: net(b)[:, 1], x, patch=8, stride=4, mode="brute", quantum=0)
    with torch.no_grad():
        ref = Occlusion(net).attribute(
            x, sliding_window_shapes=(2, 8, 8, 8), strides=(2, 4, 4, 4), target=1, baselines=0.0
        )
    assert np.allclose(ours.map, ref[0, 0].numpy(), atol=1e-6)
    assert ours.passes == ours.windows + 1


def test_brute_occlusion_keeps_its_window_grid_on_uneven_shapes() -> None:
    from napari_brain_dl.core.progress import Cancelled, CancelToken

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv3d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(3, 2)
    ).eval()
    x = torch.randn(1, 2, 26, 30, 17)  # no axis a multiple of the stride: captum would add edge windows

    def score(b: torch.Tensor) -> torch.Tensor:
        return net(b)[:, 1]

    seen: list[int] = []
    occ = occlusion(score, x, patch=8, stride=4, mode="brute", quantum=0, batch=5, report=seen.append)
    assert occ.values is not None and occ.values.shape == (5, 6, 3) and occ.evaluated.all()
    assert occ.passes == occ.windows + 1 == 91 and seen[-1] == 91
    assert np.all(occ.map[24:] == 0) and np.all(occ.map[:, :, 16:] == 0)  # beyond the last full window
    with torch.no_grad():
        for idx in [(0, 0, 0), (4, 5, 2), (2, 3, 1), (3, 0, 2)]:
            occluded = x.clone()
            occluded[
                0, :, 4 * idx[0] : 4 * idx[0] + 8, 4 * idx[1] : 4 * idx[1] + 8, 4 * idx[2] : 4 * idx[2] + 8
            ] = 0
            assert occ.values[idx] == pytest.approx(float(score(x)[0] - score(occluded)[0]), abs=1e-6)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        occlusion(score, x, patch=8, stride=4, mode="brute", cancel=token)


def test_fast_occlusion_matches_brute_with_fewer_passes(lesion: tuple[torch.Tensor, np.ndarray]) -> None:
    from scipy.stats import spearmanr

    x, mask = lesion
    net = Detector().eval()
    brute = occlusion(lambda b: net(b)[:, 1], x, patch=8, stride=4, mode="brute")
    fast = occlusion(lambda b: net(b)[:, 1], x, patch=8, stride=4, mode="fast")
    brain = x[0, 0].numpy() != 0
    rho = spearmanr(fast.map[brain], brute.map[brain])[0]
    assert rho >= 0.9, rho
    assert fast.passes < brute.passes / 2
    assert fast.map[mask].mean() > 5 * abs(fast.map[brain & ~mask]).mean()
    assert count_monai_default_passes((128, 128, 128)) == 8000  # the figure quoted in the docs


def test_gradcam_upsamples_localises_and_removes_hooks(lesion: tuple[torch.Tensor, np.ndarray]) -> None:
    x, mask = lesion
    net = Detector().eval()
    cam, layer = gradcam(net, x, class_target(1))
    assert layer == "features" and cam.shape == (48, 48, 48)
    assert cam.min() >= 0 and cam[mask].mean() > cam[~mask].mean()
    signed, _ = gradcam(net, x, class_target(0), sign="signed")
    assert signed.min() < 0  # the other class: evidence against, kept when asked
    assert not net.features._forward_hooks
    with pytest.raises(LayerError, match=r"no layer called 'nope'.*features"):
        gradcam(net, x, class_target(1), layer="nope")
    with pytest.raises(IndexError):
        gradcam(net, x, lambda out: out[:, 5])  # target fails inside the forward pass
    assert not net.features._forward_hooks


def test_gradcam_averages_gradients_over_all_three_axes() -> None:
    torch.manual_seed(1)
    net = TumorClassifier(1, features=(2, 2, 2, 2), topk=2).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    cam, _ = gradcam(net, x, class_target(1), layer="blocks.3", sign="signed")
    acts = {}
    handle = net.blocks[3].register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    x2 = x.clone().requires_grad_(True)
    out = net(x2)
    handle.remove()
    grad = torch.autograd.grad(out[0, 1], acts["a"])[0]
    manual = (grad.mean(dim=(2, 3, 4), keepdim=True) * acts["a"]).sum(1, keepdim=True)
    manual = nn.functional.interpolate(manual, size=(16, 16, 16), mode="trilinear", align_corners=False)
    assert np.allclose(cam, manual[0, 0].detach().numpy(), atol=1e-5)


def _previous_gradcam(module: nn.Module, x: torch.Tensor, target, layer: str, sign: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The hand-written Grad-CAM that captum's LayerGradCam replaced, kept as the reference."""
    store: dict[str, torch.Tensor] = {}

    def forward_hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        store["act"] = out
        out.register_hook(lambda g: store.__setitem__("grad", g))

    handle = dict(module.named_modules())[layer].register_forward_hook(forward_hook)
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)
            score = target(module(x)).sum()
            module.zero_grad(set_to_none=True)
            score.backward()
    finally:
        handle.remove()
    act, grad = store["act"].detach(), store["grad"].detach()
    cam = ((grad.mean(dim=(2, 3, 4), keepdim=True)) * act).sum(dim=1, keepdim=True)
    cam = cam.clamp(min=0) if sign == "relu" else cam.abs() if sign == "abs" else cam
    size = tuple(x.shape[2:])
    cam = nn.functional.interpolate(cam.float(), size=size, mode="trilinear", align_corners=False)
    return cam[0, 0].numpy()


class TinySegmenter(nn.Module):
    """Two-class voxelwise logits (B, 2, d, h, w) through a stride-2 encoder and an upsampling head."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv3d(1, 4, 3, stride=2, padding=1)
        self.encoder = nn.Sequential(conv, nn.LeakyReLU(0.01, inplace=True))
        self.head = nn.Conv3d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.head(self.encoder(x)), size=tuple(x.shape[2:]), mode="nearest")


@pytest.mark.parametrize("sign", ["relu", "abs", "signed"])
def test_captum_gradcam_equals_the_previous_implementation(sign: str) -> None:
    torch.manual_seed(3)
    net = TumorClassifier(2, features=(4, 4, 6, 6), topk=3).eval()
    x = torch.randn(1, 2, 24, 20, 16)
    seg = TinySegmenter().eval()
    xs = torch.randn(1, 1, 16, 12, 20)
    region = torch.zeros(1, 16, 12, 20, dtype=torch.bool)
    region[:, 4:12, 2:8, 5:15] = True
    cases = [(net, x, class_target(1), layer) for layer in ("blocks.3", "blocks.2", "blocks.1.3")] + [
        (seg, xs, region_target(1, region), "encoder"),
        (seg, xs, region_target(0, region), "encoder"),
    ]
    for model, inp, target, layer in cases:
        ours, name = gradcam(model, inp, target, layer=layer, sign=sign)
        ref = _previous_gradcam(model, inp, target, layer, sign)
        assert name == layer and ours.shape == ref.shape == tuple(inp.shape[2:])
        peak = float(np.abs(ref).max())
        assert peak > 0  # a real map, not all zeros
        assert np.abs(ours - ref).max() <= 1e-5 * peak, (layer, np.abs(ours - ref).max(), peak)
    assert not any(m._forward_hooks for m in [*net.modules(), *seg.modules()])


def test_gradcam_uses_the_layers_own_output_before_in_place_ops() -> None:
    """A layer followed by an in-place activation (BatchNorm -> LeakyReLU(inplace)): captum keeps the
    layer's output; the previous hook read it after the activation had overwritten it."""
    import copy

    torch.manual_seed(3)
    net = TumorClassifier(2, features=(4, 4, 6, 6), topk=3).eval()
    x = torch.randn(1, 2, 24, 20, 16)
    plain = copy.deepcopy(net)
    for m in plain.modules():
        if isinstance(m, nn.LeakyReLU):
            m.inplace = False
    ours, _ = gradcam(net, x, class_target(1), layer="blocks.3.1", sign="signed")
    ref = _previous_gradcam(plain, x, class_target(1), "blocks.3.1", "signed")
    overwritten = _previous_gradcam(net, x, class_target(1), "blocks.3.1", "signed")
    peak = float(np.abs(ref).max())
    assert np.abs(ours - ref).max() <= 1e-5 * peak
    assert np.abs(overwritten - ref).max() > 0.1 * peak  # what the previous implementation got wrong


def test_gradcam_layer_outside_the_target_is_refused() -> None:
    seg = TinySegmenter().eval()
    seg.spare = nn.Conv3d(1, 1, 3)  # registered, never called
    x = torch.randn(1, 1, 8, 8, 8)
    with pytest.raises(LayerError, match="'spare' is not used"):
        gradcam(seg, x, lambda out: out[:, 1].sum((1, 2, 3)), layer="spare")
    with pytest.raises(LayerError, match="'1' has no 3D feature maps"):
        gradcam(nn.Sequential(nn.Conv3d(1, 2, 1), nn.Flatten()), x, lambda out: out.sum(1), layer="1")


def test_region_target_sums_logits_over_mask() -> None:
    out = torch.arange(2 * 8, dtype=torch.float32).reshape(1, 2, 2, 2, 2)
    region = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    region[0, 0, 0] = True
    assert float(region_target(1, region)(out)[0]) == pytest.approx(8 + 9)


def test_frame_lands_on_scan_grid_after_reorientation_and_resampling() -> None:
    card = ModelCard.from_dict(
        {
            "id": "t",
            "name": "t",
            "task": "classification",
            "inputs": ["FLAIR"],
            "orientation": "LPS",
            "architecture": {"type": "project", "name": "classifier"},
            "preprocessing": [{"op": "zscore_foreground"}, {"op": "resample", "spacing": 2.0}],
            "inference": {"margin": 2},
        }
    )
    data = np.zeros((60, 50, 40), np.float32)
    data[10:50, 8:42, 5:35] = 1.0
    data[20:30, 10:20, 10:20] = 3.0
    ras = Volume(data, np.diag([1.0, 1.0, 1.0, 1.0]), name="ras")
    frame = prepare(card, [ras])
    assert all(n % 8 == 0 or n == full for n, full in zip(frame.x.shape[1:], frame.full_shape, strict=True))
    back = frame.to_scan(frame.x[0])
    assert back.shape == ras.shape
    assert back[20:30, 10:20, 10:20].mean() > back[40:48, 30:40, 20:30].mean()  # bright cube stays put
    mask = ras.with_data((data == 3).astype(np.uint8))
    on_model = frame.from_scan(mask)
    assert frame.x[0][on_model].mean() > frame.x[0][~on_model & frame.brain].mean()


def test_localisation_and_similarity_numbers() -> None:
    heat = np.zeros((10, 10, 10), np.float32)
    heat[:5] = 1.0
    heat[5:] = -1.0  # negative evidence is not counted as energy
    mask = np.zeros_like(heat, bool)
    mask[:4] = True
    brain = np.ones_like(mask)
    result = ck.localisation(heat, mask, brain)
    assert result.value == pytest.approx(0.8) and result.verdict == "pass"
    assert result.details["mask_share_of_brain"] == pytest.approx(0.4)
    assert ck.localisation(np.ones_like(heat), mask, brain).verdict == "fail"
    rho, ssim = ck.similarity(
        heat + np.arange(1000).reshape(heat.shape), heat + np.arange(1000).reshape(heat.shape), brain
    )
    assert rho == pytest.approx(1.0) and ssim == pytest.approx(1.0)


def test_deletion_insertion_rewards_the_right_order(lesion: tuple[torch.Tensor, np.ndarray]) -> None:
    x, mask = lesion
    net = Detector().eval()
    brain = x[0, 0].numpy() != 0

    def prob(b: torch.Tensor) -> torch.Tensor:
        return torch.softmax(net(b), 1)[:, 1]

    good = ck.deletion_insertion(prob, x, mask.astype(np.float32), brain, steps=8)
    bad = ck.deletion_insertion(prob, x, (~mask).astype(np.float32), brain, steps=8)
    auc = good.details["auc"]
    assert (
        auc["deletion_saliency"] < auc["deletion_random"]
        and auc["insertion_saliency"] > auc["insertion_random"]
    )
    assert good.verdict == "pass" and bad.verdict == "fail"


def test_randomisation_fails_for_a_map_that_ignores_the_weights(
    lesion: tuple[torch.Tensor, np.ndarray],
) -> None:
    x, _ = lesion
    net = Detector().eval()
    brain = x[0, 0].numpy() != 0
    edge_map = np.abs(np.gradient(x[0, 0].numpy())[0])  # "saliency" = input edges, whatever the model

    def score(m: nn.Module) -> float:
        with torch.no_grad():
            return float(m(x)[0, 1])

    result = ck.randomisation(net, lambda m: edge_map, edge_map, brain, score)
    assert result.verdict == "fail" and result.value == pytest.approx(1.0)
    assert "input's structure" in result.sentence or "no different" in result.sentence
    assert len(result.details["cascade"]) >= 1
