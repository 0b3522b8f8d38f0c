"""Hostile and careless command lines (issue #16): nothing lost, nothing run, nothing left half done.

Each test builds its hostile input itself. Items: 1 batch never deletes or writes into what it
did not make; 2 untrusted bundles build only network classes; 3 rerun distrusts its sidecar;
4 the local Dask cluster authenticates; 8 batch ignores hidden files; 9 YAML bombs; 10 outputs
never replace inputs, repeat, or outlive a Ctrl-C without their sidecar.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.cli import main
from napari_brain_dl.core import io
from napari_brain_dl.core.batch import MARKER, run_batch
from napari_brain_dl.core.cohort import discover
from napari_brain_dl.core.models.bundle import BundleError, card_from_bundle
from napari_brain_dl.core.models.card import CardError, ModelCard
from napari_brain_dl.core.models.loaders import UntrustedModelError, load_model
from tests.toy_volumes import toy_head


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def cohort(tmp_path: Path) -> Path:
    """Two subjects with FLAIR and T1c (small toy heads), as a careless user's input folder."""
    root = tmp_path / "cohort"
    for i, subject in enumerate(("case_a", "case_b")):
        (root / subject).mkdir(parents=True)
        for j, name in enumerate(("t2f.nii.gz", "t1c.nii.gz")):
            vol = toy_head(seed=2 * i + j)
            io.save(vol, root / subject / name)
    return root


@pytest.fixture(autouse=True)
def _inproc_on_loopback() -> Iterator[None]:
    """Name inproc:// addresses after 127.0.0.1 (dask would otherwise probe 8.8.8.8)."""
    from distributed.comm import inproc

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inproc.global_manager, "_ip", "127.0.0.1")
        yield


# -- 1: batch deletes nothing it did not write ---------------------------------------------------
@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_batch_output_dir_never_overlaps_the_input(cohort: Path, rule_card: str, where: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = _digest(cohort)
    out, inp = {"same": (cohort, cohort), "inside": (cohort / "results", cohort),
                "around": (cohort.parent, cohort)}[where]
    code = main(["batch", "--task", "segment", "--input-dir", str(inp), "--output-dir", str(out),
                 "--model", rule_card])
    err = capsys.readouterr().err
    assert code == 3 and "input" in err and "Nothing was run" in err
    assert _digest(cohort) == before and not (cohort / "results").exists()


def test_batch_refuses_a_folder_it_did_not_make(cohort: Path, rule_card: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "someone_elses"
    (out / "case_a").mkdir(parents=True)
    (out / "case_a" / "notes.txt").write_text("a colleague's notes")
    code = main(["batch", "--task", "segment", "--input-dir", str(cohort), "--output-dir", str(out),
                 "--model", rule_card])
    assert code == 3 and "batch did not write" in capsys.readouterr().err
    assert (out / "case_a" / "notes.txt").read_text() == "a colleague's notes"
    assert not (out / MARKER).exists()


def test_batch_keeps_a_subject_folder_it_did_not_write(cohort: Path, rule_card: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_batch(cohort, out, "segment", {"model": rule_card}, processes=False)
    assert first.failed == 0 and (out / MARKER).is_file()
    (out / "case_b" / "done.json").unlink()  # now a folder batch cannot vouch for
    (out / "case_b" / "notes.txt").write_text("keep me")
    second = run_batch(cohort, out, "segment", {"model": rule_card}, processes=False)
    rows = {r["id"]: r for r in second.rows}
    assert rows["case_a"]["status"] == "ok" and rows["case_b"]["status"] == "failed"
    assert "batch never removes what it did not write" in rows["case_b"]["error"]
    assert (out / "case_b" / "notes.txt").read_text() == "keep me"
    assert (out / "case_b" / "tumor.nii.gz").exists()


# -- 8: hidden files are never scans ---------------------------------------------------------------
def test_batch_ignores_appledouble_and_temporary_files(cohort: Path) -> None:
    folder = cohort / "case_a"
    (folder / "._t2f.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (folder / ".t2f.nii.gz.k3j2x9.nii.gz").write_bytes((folder / "t2f.nii.gz").read_bytes()[:100])
    (folder / "t2f.nii.gz").rename(folder / "z_t2f.nii.gz")  # sorts after the hidden ones
    subject = discover(cohort)[0]
    assert subject.files["flair"].name == "z_t2f.nii.gz"
    assert all(not p.name.startswith(".") for p in subject.files.values())


# -- 2: an untrusted bundle builds network classes only ----------------------------------------------
def _bundle(folder: Path, config: dict[str, object]) -> Path:
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    (folder / "configs" / "metadata.json").write_text(json.dumps({"name": "hostile"}))
    return folder


def _run_cmd(marker: Path) -> dict[str, object]:
    return {"_target_": "monai.utils.misc.run_cmd", "cmd_list": ["touch", str(marker)]}


@pytest.mark.parametrize("shape", ["root", "nested", "reference", "hub", "debug_mode"])
def test_untrusted_bundle_function_targets_never_run(tmp_path: Path, shape: str) -> None:
    marker = tmp_path / "pwned.txt"
    net = {"_target_": "monai.networks.nets.BasicUNet", "spatial_dims": 3, "in_channels": 1,
           "out_channels": 2}
    config: dict[str, object] = {
        "root": {"network_def": _run_cmd(marker)},
        "nested": {"network_def": {**net, "act": _run_cmd(marker)}},
        "reference": {"network_def": {**net, "act": "@evil"}, "evil": _run_cmd(marker)},
        "hub": {"network_def": {"_target_": "torch.hub.load", "repo_or_dir": str(tmp_path / "b"),
                                "model": "net", "source": "local"}},
        "debug_mode": {"network_def": {**net, "_mode_": "debug"}},
    }[shape]
    folder = _bundle(tmp_path / "b", config)
    (folder / "hubconf.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef net(): pass\n")
    with pytest.raises(UntrustedModelError, match="refused"):
        load_model(card_from_bundle(folder), allow_random_weights=True)
    assert not marker.exists()


def test_untrusted_bundle_network_class_still_builds(tmp_path: Path) -> None:
    folder = _bundle(tmp_path / "b", {"network_def": {"_target_": "BasicUNet", "spatial_dims": 3,
                                                      "in_channels": 1, "out_channels": 2}})
    model = load_model(card_from_bundle(folder), allow_random_weights=True)
    assert model is not None


def test_bundle_yaml_with_python_tag_is_one_sentence(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"
    (tmp_path / "b" / "configs").mkdir(parents=True)
    (tmp_path / "b" / "configs" / "inference.yaml").write_text(
        f"network_def: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(BundleError, match="not a plain YAML config"):
        card_from_bundle(tmp_path / "b")
    assert not marker.exists()


# -- 9: YAML bombs ---------------------------------------------------------------------------------
def _laughs(levels: int = 12) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    card = ["id: laughs", "name: laughs", "task: segmentation", "inputs: [T1]",
            "architecture: {type: meshnet}"]
    return "\n".join([*card, *lines]) + "\n"


def test_billion_laughs_card_is_refused_by_card_listing_and_run(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "models" / "laughs.yaml"
    card.parent.mkdir()
    card.write_text(_laughs())
    with pytest.raises(CardError, match="aliases are not accepted"):
        ModelCard.from_file(card)
    from napari_brain_dl.core.models.registry import default_registry

    default_registry().add_folder(card.parent)
    assert main(["models", "list", "--json"]) == 0
    assert "laughs" not in capsys.readouterr().out
    scan = tmp_path / "t1.nii.gz"
    io.save(toy_head(shape=(20, 20, 20)), scan)
    code = main(["run", "--model", str(card), "--input", str(scan), "-o", str(tmp_path / "o.nii.gz")])
    assert code == 3 and "aliases are not accepted" in capsys.readouterr().err


# -- 3: rerun distrusts its sidecar ------------------------------------------------------------------
def _sidecar(path: Path, **record: object) -> Path:
    base = {"schema": "napari-brain-dl/provenance/1", "command": "convert", "options": {},
            "inputs": {}, "outputs": {}, "output_options": []}
    path.write_text(json.dumps({**base, **record}))
    return path


def test_rerun_refuses_commands_that_write_no_sidecar(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "thesis.html"
    victim.write_text("months of work")
    cases = {
        "report": {"command": "report", "options": {"output": str(victim), "overwrite": True,
                                                    "scan": ["FLAIR=x"]}},
        "batch": {"command": "batch", "options": {"scheduler": "tcp://203.0.113.9:8786"}},
        "rerun": {"command": "rerun", "options": {"sidecar": str(tmp_path / "loop.json")}},
    }
    for name, record in cases.items():
        sidecar = _sidecar(tmp_path / ("loop.json" if name == "rerun" else f"{name}.json"), **record)
        assert main(["rerun", str(sidecar)]) == 3
        assert "rerun does not run" in capsys.readouterr().err
    assert victim.read_text() == "months of work"


def test_rerun_never_takes_overwrite_or_outputs_elsewhere_from_the_sidecar(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan = tmp_path / "in" / "t1.nii.gz"
    scan.parent.mkdir()
    io.save(toy_head(shape=(20, 20, 20)), scan)
    digest = hashlib.sha256(scan.read_bytes()).hexdigest()
    victim = tmp_path / "elsewhere" / "keep.nii.gz"
    victim.parent.mkdir()
    victim.write_bytes(b"precious")
    inputs = {"input": {"path": str(scan), "sha256": digest}}
    far = _sidecar(tmp_path / "in" / "far.nii.gz.json", inputs=inputs, output_options=["output"],
                   options={"input": str(scan), "output": str(victim), "overwrite": True})
    assert main(["rerun", str(far)]) == 3 and "outside its own folder" in capsys.readouterr().err
    here = tmp_path / "in" / "here.nii.gz"
    here.write_bytes(b"earlier result")
    near = _sidecar(tmp_path / "in" / "here.nii.gz.json", inputs=inputs, output_options=["output"],
                    options={"input": str(scan), "output": str(here), "overwrite": True})
    assert main(["rerun", str(near)]) == 3 and "already exists" in capsys.readouterr().err
    assert victim.read_bytes() == b"precious" and here.read_bytes() == b"earlier result"
    no_inputs = _sidecar(tmp_path / "in" / "x.json", options={"output": str(here)})
    assert main(["rerun", str(no_inputs)]) == 3 and "no input files" in capsys.readouterr().err


# -- 4: the local cluster authenticates ---------------------------------------------------------------
def _refused_without_certificate(address: str) -> bool:
    """True when a TLS peer without a client certificate is cut off (not served, not left waiting)."""
    host, port = address[len("tls://"):].rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw, context.wrap_socket(raw) as tls:
            tls.settimeout(10)
            tls.sendall(b"\x00" * 64)
            return tls.recv(1024) == b""
    except TimeoutError:  # the server waits for more: it accepted us
        return False
    except (ssl.SSLError, ConnectionError):
        return True


@pytest.mark.allow_loopback("the local Dask cluster, and peers without credentials, on 127.0.0.1")
def test_local_dask_cluster_refuses_unauthenticated_peers() -> None:
    from napari_brain_dl.core.batch import _connect

    client, cluster = _connect(None, 1, True)
    try:
        addresses = [cluster.scheduler_address, *client.scheduler_info()["workers"]]
        assert len(addresses) == 2 and all(a.startswith("tls://127.0.0.1:") for a in addresses)
        assert all(_refused_without_certificate(a) for a in addresses)
        assert client.submit(abs, -2).result() == 2  # the cluster's own client is served
    finally:
        client.close()
        cluster.close()


# -- 10: outputs ------------------------------------------------------------------------------------
@pytest.fixture()
def exam(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "exam"
    folder.mkdir()
    files = {"flair": folder / "t2f.nii.gz", "t1c": folder / "t1c.nii.gz"}
    for i, path in enumerate(files.values()):
        io.save(toy_head(seed=i), path)
    return files


def test_segment_output_may_not_be_an_input(exam: dict[str, Path], rule_card: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    before = exam["flair"].read_bytes()
    code = main(["segment", "--flair", str(exam["flair"]), "--t1c", str(exam["t1c"]), "--model", rule_card,
                 "-o", str(exam["flair"]), "--overwrite"])
    assert code == 3 and "is the input" in capsys.readouterr().err
    assert exam["flair"].read_bytes() == before


def test_json_equal_to_output_is_refused_before_any_compute(exam: dict[str, Path], rule_card: str,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import napari_brain_dl.core.tasks.tumor as tumor

    monkeypatch.setattr(tumor, "segment_tumor", lambda *a, **k: pytest.fail("computed before refusing"))
    out = tmp_path / "seg.nii.gz"
    for json_path in (out, Path(f"{out}.json")):  # the output itself, or its provenance sidecar
        code = main(["segment", "--flair", str(exam["flair"]), "--t1c", str(exam["t1c"]),
                     "--model", rule_card, "-o", str(out), "--json", str(json_path)])
        assert code == 3 and "choose two names" in capsys.readouterr().err
    assert not list(tmp_path.glob("seg*"))


def test_ctrl_c_after_the_output_lands_removes_it(exam: dict[str, Path], rule_card: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import napari_brain_dl.core.provenance as provenance

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(provenance, "write_sidecar", interrupted)
    out = tmp_path / "seg.nii.gz"
    code = main(["segment", "--flair", str(exam["flair"]), "--t1c", str(exam["t1c"]), "--model", rule_card,
                 "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 130 and "removed" in err and str(out) in err
    assert not out.exists() and not list(tmp_path.glob("*.json"))
    assert np.asarray(io.load(exam["flair"]).data).any()  # the inputs are untouched
