"""The ``lightseg`` command-line contract."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from napari_lightseg.cli import main
from napari_lightseg.models import list_cards

CNN_CARDS = [c.name for c in list_cards() if c.kind == "cnn"]
needs_cnn = pytest.mark.skipif(not CNN_CARDS, reason="no shipped CNN models")


@pytest.fixture(scope="module")
def sample_case(tmp_path_factory):
    from napari_lightseg._sample_data import write_sample_case

    return write_sample_case(tmp_path_factory.mktemp("sample"), seed=1)


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert isinstance(models, list) and models
    for m in models:
        assert {"name", "kind", "precision", "file_mb", "params", "validation"} <= set(m)
        assert m["kind"] in ("cnn", "pcnn")


def test_models_table(capsys):
    assert main(["models"]) == 0
    assert "name" in capsys.readouterr().out


def _check_output(out, flair_path):
    src, seg = nib.load(flair_path), nib.load(out)
    assert seg.shape == src.shape
    assert np.array_equal(seg.affine, src.affine)
    return np.asarray(seg.dataobj)


@needs_cnn
def test_segment_sample_with_report(sample_case, tmp_path, capsys):
    out, report = tmp_path / "seg.nii.gz", tmp_path / "report.json"
    code = main(["segment", str(sample_case), "--model", CNN_CARDS[0], "--out", str(out), "--report", str(report)])
    assert code == 0, capsys.readouterr().err
    values = _check_output(out, next(sample_case.glob("*_flair.nii.gz")))
    assert set(np.unique(values)) <= {0, 1, 2, 4}  # the study's own convention (2021)
    data = json.loads(report.read_text())
    assert {"model", "backend", "provider", "timings_s", "volumes_ml"} <= set(data)
    assert set(data["timings_s"]) >= {"load", "preprocess", "inference", "postprocess", "total"}


@needs_cnn
def test_segment_2023_labels(sample_case, tmp_path):
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(sample_case), "--model", CNN_CARDS[0], "--out", str(out), "--labels", "brats2023"]) == 0
    assert 4 not in np.unique(np.asarray(nib.load(out).dataobj))


def test_segment_with_pcnn(sample_case, tmp_path):
    pcnn = [c.name for c in list_cards() if c.kind == "pcnn"]
    if not pcnn:
        pytest.skip("no PCNN card")
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(sample_case), "--model", pcnn[0], "--out", str(out)]) == 0
    _check_output(out, next(sample_case.glob("*_flair.nii.gz")))


def test_errors_are_one_line(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "nope"), "--model", "x", "--out", str(tmp_path / "o.nii.gz")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("lightseg: error:") and "\n" not in err
    assert main(["segment", str(tmp_path), "--model", "no-such-model", "--out", str(tmp_path / "o.nii.gz")]) != 0
    assert "no-such-model" in capsys.readouterr().err


@needs_cnn
@pytest.mark.parametrize("case", ["brats18/Brats18_TCIA01_201_1", "other/AURORA-example-met", "other/BraTS-GLI-00001-000"])
def test_segment_real_cases(data_root, case, tmp_path):
    folder = data_root / case
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(folder), "--model", CNN_CARDS[0], "--out", str(out)]) == 0
    flair = next(p for p in folder.iterdir() if "fla" in p.name.lower() or "t2f" in p.name.lower())
    values = _check_output(out, flair)
    assert set(np.unique(values)) <= {0, 1, 2, 4}
    assert (values > 0).sum() > 1000  # every one of these cases has a sizeable tumour


@pytest.mark.viewer
@needs_cnn
def test_view_screenshot(tmp_path):
    """`lightseg view --screenshot` opens napari (under the test's X display), runs a model, saves, exits."""
    import subprocess
    import sys

    shot = tmp_path / "view.png"
    done = subprocess.run([sys.executable, "-m", "napari_lightseg.cli", "view", "--sample", "--model", CNN_CARDS[0],
                           "--3d", "--screenshot", str(shot)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
