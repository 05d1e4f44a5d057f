"""The ``lightseg`` command-line contract."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

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


def test_the_recommended_model_is_the_default(sample_case, tmp_path, capsys, monkeypatch):
    """Without --model, segment runs the recommended card, and the models table marks it."""
    from napari_lightseg import engine
    from napari_lightseg.models import RECOMMENDED, get_card, list_cards, recommended_name

    assert recommended_name() == RECOMMENDED and get_card(RECOMMENDED).kind == "cnn"
    assert recommended_name(list_cards()[:1]) == list_cards()[0].name  # a trimmed install still has one
    assert main(["models"]) == 0
    marked = [line for line in capsys.readouterr().out.splitlines() if line.endswith("(default)")]
    assert [line.split()[0] for line in marked] == [RECOMMENDED]
    used = []
    real_run = engine.run
    monkeypatch.setattr(engine, "run", lambda study, card, *a, **k: used.append(card.name) or real_run(study, card, *a, **k))
    assert main(["segment", str(sample_case), "--out", str(tmp_path / "seg.nii.gz")]) == 0
    assert used == [RECOMMENDED]


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


# ------------------------------------------------------------------ safety: outputs, exit codes, messages
SPELLINGS = ("absolute", "relative", "dotdot", "symlink", "hardlink", "upper")


@pytest.fixture
def tiny(tmp_path_factory, monkeypatch):
    """The CLI resolves ``--model tiny-fp32`` to the tiny synthetic ONNX model (fast, deterministic)."""
    from helpers import tiny_onnx_card

    import napari_lightseg.models as models

    card = tiny_onnx_card(tmp_path_factory.mktemp("tiny"))
    real = models.get_card
    monkeypatch.setattr(models, "get_card", lambda name, *a, **k: card if name == card.name else real(name, *a, **k))
    return card.name


@pytest.fixture
def blob_case(tmp_path):
    from bad_inputs import synthetic_case

    return synthetic_case(tmp_path / "data")


def _spell(target: Path, spelling: str, links: Path) -> str:
    """Another way to name the same file (or, for ``upper``, a name only letter case tells apart)."""
    if spelling == "absolute":
        return str(target)
    if spelling == "relative":
        return os.path.relpath(target)
    if spelling == "dotdot":
        return str(target.parent / ".." / target.parent.name / target.name)
    if spelling == "upper":
        return str(target.parent / target.name.upper())
    link = links / f"{spelling}-{len(list(links.iterdir()))}-{target.name}"
    if spelling == "symlink":
        link.symlink_to(target)
    else:
        os.link(target, link)
    return str(link)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lightseg: error: "), err
    assert len(lines[0]) <= 320, lines[0]
    return lines[0]


def test_every_output_at_every_input_is_refused(blob_case, tiny, tmp_path, monkeypatch, capsys):
    """segment/detect/compare/view with each output pointed at each input, in every spelling: exit 2, inputs intact."""
    from bad_inputs import four_d_file, hashes

    monkeypatch.chdir(tmp_path)
    four_d = four_d_file(blob_case, tmp_path / "study4d.nii.gz")
    prediction = tmp_path / "prediction.nii.gz"
    shutil.copyfile(blob_case / "blob_seg.nii.gz", prediction)
    links, outputs = tmp_path / "links", tmp_path / "outputs"
    links.mkdir(), outputs.mkdir()
    case_files = sorted(blob_case.iterdir())
    ok_mask = str(outputs / "mask.nii.gz")
    commands = {  # name: (the inputs it reads, argv with the output at X)
        "segment --out": (case_files, lambda x: ["segment", str(blob_case), "--model", tiny, "--out", x]),
        "segment --report": (case_files, lambda x: ["segment", str(blob_case), "--model", tiny, "--out", ok_mask, "--report", x]),
        "segment 4D --out": ([four_d], lambda x: ["segment", str(four_d), "--model", tiny, "--out", x]),
        "segment files --out": (case_files, lambda x: ["segment", *map(str, case_files[:4]), "--model", tiny, "--out", x]),
        "detect --out": (case_files, lambda x: ["detect", str(blob_case), "--out", x]),
        "compare --csv": ([*case_files, prediction],
                          lambda x: ["compare", str(blob_case / "blob_seg.nii.gz"), str(prediction), "--csv", x]),
        "view --screenshot": (case_files, lambda x: ["view", str(blob_case), "--screenshot", x]),
    }
    for spelling in SPELLINGS:
        for name, (inputs, argv) in commands.items():
            for target in inputs:
                spelled = _spell(target, spelling, links)
                before = hashes([tmp_path / "data", four_d, prediction, links])
                for overwrite in ([], ["--overwrite"]):
                    code = main(argv(spelled) + overwrite)
                    err = capsys.readouterr().err
                    assert code == 2, (name, spelling, target.name, overwrite, err)
                    line = _one_error_line(err)
                    assert spelled in line or os.path.basename(spelled) in line, line
                assert hashes([tmp_path / "data", four_d, prediction, links]) == before, (name, spelling, target)
    assert sorted(p.name for p in blob_case.iterdir()) == [p.name for p in case_files]  # no temp left behind
    assert [p.name for p in case_files] == [f"blob_{s}.nii.gz" for s in ("flair", "seg", "t1", "t1ce", "t2")]
    assert list(outputs.iterdir()) == []


def test_out_and_report_on_one_path(blob_case, tiny, tmp_path, capsys):
    same = str(tmp_path / "both.nii.gz")
    assert main(["segment", str(blob_case), "--model", tiny, "--out", same, "--report", same]) == 2
    assert "same path as the mask output" in _one_error_line(capsys.readouterr().err)
    assert not Path(same).exists()


def test_existing_output_needs_overwrite_and_modes_follow_umask(blob_case, tiny, tmp_path, capsys):
    out, report = tmp_path / "seg.nii.gz", tmp_path / "report.json"
    old = os.umask(0o022)
    try:
        assert main(["segment", str(blob_case), "--model", tiny, "--out", str(out), "--report", str(report)]) == 0
        assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(report.stat().st_mode) == 0o644
        first = out.read_bytes()
        report.write_text("old report")
        assert main(["segment", str(blob_case), "--model", tiny, "--out", str(out), "--report", str(report)]) == 2
        assert "file exists; refusing to overwrite" in _one_error_line(capsys.readouterr().err)
        assert report.read_text() == "old report"
        assert main(["segment", str(blob_case), "--model", tiny, "--out", str(out), "--report", str(report), "--overwrite"]) == 0
        assert out.read_bytes() == first and json.loads(report.read_text())["model"] == tiny
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_report_into_missing_folder_writes_nothing(blob_case, tiny, tmp_path, capsys):
    out = tmp_path / "seg.nii.gz"
    code = main(["segment", str(blob_case), "--model", tiny, "--out", str(out), "--report", str(tmp_path / "nope" / "r.json")])
    assert code == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no mask, no temp file


def test_out_is_a_folder_or_unwritable(blob_case, tiny, tmp_path, monkeypatch, capsys):
    assert main(["segment", str(blob_case), "--model", tiny, "--out", str(tmp_path / "dir.nii.gz")]) == 0
    folder = tmp_path / "folder.nii.gz"
    folder.mkdir()
    assert main(["segment", str(blob_case), "--model", tiny, "--out", str(folder), "--overwrite"]) == 2
    assert "is a folder" in _one_error_line(capsys.readouterr().err)
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse new files another way
        import tempfile

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:
        readonly.chmod(0o555)
    try:
        assert main(["segment", str(blob_case), "--model", tiny, "--out", str(readonly / "seg.nii.gz")]) == 2
    finally:
        readonly.chmod(0o755)
    line = _one_error_line(capsys.readouterr().err)
    assert "seg.nii.gz" in line and "cannot write in folder" in line


def test_exit_codes_internal_error_and_cancel(blob_case, tiny, tmp_path, monkeypatch, capsys):
    from napari_lightseg import engine

    out = tmp_path / "seg.nii.gz"
    argv = ["segment", str(blob_case), "--model", tiny, "--out", str(out), "--report", str(tmp_path / "r.json")]

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "run", boom)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: boom" in _one_error_line(err) and "Traceback" not in err
    assert main(["--debug", *argv]) == 1
    assert "Traceback" in capsys.readouterr().err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "run", interrupted)
    assert main(argv) == 130
    assert "cancelled" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # nothing written, no temp files
    assert main(["segment", "--model"]) == 2  # an argument problem: one line, exit 2
    _one_error_line(capsys.readouterr().err)


def test_exit_code_in_a_subprocess(blob_case, tmp_path):
    """The real process: output = input refused with status 2 before any model loads; nothing changed."""
    import subprocess
    import sys

    from bad_inputs import hashes

    model = list_cards()[0].name
    before = hashes([blob_case])
    done = subprocess.run([sys.executable, "-m", "napari_lightseg.cli", "segment", str(blob_case), "--model", model,
                           "--out", str(blob_case / "blob_flair.nii.gz"), "--overwrite"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "is an input of this run" in _one_error_line(done.stderr)
    assert hashes([blob_case]) == before


def test_compare_against_an_image_is_one_short_line(blob_case, tmp_path, capsys):
    from bad_inputs import image_as_labels

    image = image_as_labels(blob_case, tmp_path / "not_a_mask.nii.gz")
    assert main(["compare", str(blob_case / "blob_seg.nii.gz"), str(image), "--csv", str(tmp_path / "c.csv")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "not_a_mask.nii.gz: not a label volume" in line and len(line) < 200
    assert not (tmp_path / "c.csv").exists()


def test_degenerate_studies_through_the_cli(blob_case, tiny, tmp_path, capsys):
    """Blank FLAIR refused; background minus 2000 gives the clean mask with a note; x1e30 the clean mask too."""
    from bad_inputs import blank_flair, scaled, shifted_background

    clean = tmp_path / "clean.nii.gz"
    assert main(["segment", str(blob_case), "--model", tiny, "--out", str(clean)]) == 0
    reference = np.asarray(nib.load(str(clean)).dataobj)
    assert (reference > 0).sum() > 50
    capsys.readouterr()

    blank = blank_flair(blob_case, tmp_path / "blank")
    assert main(["segment", str(blank), "--model", tiny, "--out", str(tmp_path / "b.nii.gz")]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "blob_flair.nii.gz" in line and "FLAIR is blank" in line
    assert not (tmp_path / "b.nii.gz").exists()

    for name, make, note in (("shifted", shifted_background, "background was -2000"),
                             ("scaled", scaled, "rescaled by a power of two")):
        case = make(blob_case, tmp_path / name)
        out, report = tmp_path / f"{name}.nii.gz", tmp_path / f"{name}.json"
        assert main(["segment", str(case), "--model", tiny, "--out", str(out), "--report", str(report)]) == 0
        assert note in capsys.readouterr().err
        assert any(note in n for n in json.loads(report.read_text())["notes"])
        assert np.array_equal(np.asarray(nib.load(str(out)).dataobj), reference), name


def test_os_junk_beside_a_case_is_ignored(blob_case, tiny, tmp_path):
    from bad_inputs import with_os_junk

    with_os_junk(blob_case)
    assert main(["segment", str(blob_case), "--model", tiny, "--out", str(tmp_path / "seg.nii.gz")]) == 0


def test_detect_and_compare_refuse_existing_outputs(blob_case, tmp_path, capsys):
    boxes, table = tmp_path / "boxes.json", tmp_path / "table.csv"
    seg = str(blob_case / "blob_seg.nii.gz")
    assert main(["detect", str(blob_case), "--out", str(boxes)]) == 0
    copy = tmp_path / "copy.nii.gz"
    shutil.copyfile(seg, copy)
    assert main(["compare", seg, str(copy), "--csv", str(table)]) == 0
    for argv in (["detect", str(blob_case), "--out", str(boxes)], ["compare", seg, str(copy), "--csv", str(table)]):
        before = Path(argv[-1]).read_bytes()
        assert main(argv) == 2
        assert "file exists" in _one_error_line(capsys.readouterr().err)
        assert Path(argv[-1]).read_bytes() == before
        assert main([*argv, "--overwrite"]) == 0
    assert json.loads(boxes.read_text())["case"] == "blob"
    assert table.read_text().splitlines()[1].startswith("copy,blob_seg,1.0")


def test_messages_are_one_bounded_line():
    from napari_lightseg.cli import MAX_MESSAGE, one_line

    text = one_line("a.nii.gz: first line\nsecond  line " + "x" * 1000)
    assert "\n" not in text and len(text) == MAX_MESSAGE and text.startswith("a.nii.gz: first line second line x")


def test_output_kinds_show_in_their_names(blob_case, tiny, tmp_path, capsys):
    seg = str(blob_case / "blob_seg.nii.gz")
    for argv, option in ((["segment", str(blob_case), "--model", tiny, "--out", str(tmp_path / "m.nii.gz"),
                           "--report", str(tmp_path / "r.nii.gz")], "--report must end in .json"),
                         (["segment", str(blob_case), "--model", tiny, "--out", str(tmp_path / "m.json")], "output must end in .nii"),
                         (["detect", str(blob_case), "--out", str(tmp_path / "b.csv")], "--out must end in .json"),
                         (["compare", seg, seg, "--csv", str(tmp_path / "c.json")], "--csv must end in .csv")):
        assert main(argv) == 2
        assert option in _one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]
