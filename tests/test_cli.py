"""The `keras-initkit` command: `study` numbers, flags and files; `demo` run folder; bad input.

In-process calls to `keras_initkit.cli.main` test the logic; a few subprocess runs of the
installed console script test what a user types (exit codes, stderr, backend switch).
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_initkit.cli import main
from keras_initkit.cli.study import build_stack, run_study

SCRIPT = shutil.which("keras-initkit", path=str(Path(sys.executable).parent)) or shutil.which(
    "keras-initkit")


def _command(*args, env=None):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, env=environment,
                          timeout=300, check=False)


def _layer_stds(output, activation, init):
    """The std column of one combination's block of the printed table."""
    block = output.split(f"{activation} with {init}:")[1].split("\n\n")[0]
    rows = [line.split() for line in block.splitlines()[2:] if re.match(r"\s+\d+\s", line)]
    return [float(row[2]) for row in rows]


def test_study_acceptance_tanh_glorot_matches_the_lesson(capsys):
    # The seeds' numbers for D = randn(1000, 500), 10 x 500 tanh, Xavier: 0.63 ... 0.23.
    code = main(["study", "--activation", "tanh", "--init", "glorot_normal", "--depth", "10",
                 "--width", "500", "--batch", "1000"])
    out = capsys.readouterr().out
    assert code == 0
    stds = _layer_stds(out, "tanh", "glorot_normal")
    assert len(stds) == 10
    assert stds[0] == pytest.approx(0.63, abs=0.02)
    assert stds[-1] == pytest.approx(0.23, abs=0.02)
    assert all(a > b for a, b in itertools.pairwise(stds))  # slowly shrinking, never collapsing
    assert max(len(line) for line in out.splitlines()) <= 80


@pytest.mark.parametrize(
    ("activation", "init", "verdict"),
    [
        ("tanh", "normal:0.01", "collapsed"),
        ("tanh", "normal:1.0", "saturated"),
        ("tanh", "zeros", "symmetric"),
        ("relu", "zeros", "symmetric"),
        ("tanh", "constant:0.05", "symmetric"),
        ("relu", "glorot_normal", "vanishing"),
        ("relu", "normal:1.0", "exploding"),
        ("relu", "he_normal", "healthy"),
        ("relu", "auto", "healthy"),
        ("selu", "lecun_normal", "healthy"),
        ("tanh", "lsuv", "healthy"),
    ],
)
def test_study_verdicts_are_the_lessons(activation, init, verdict):
    depth = 6 if init == "lsuv" else 10  # LSUV's layer-by-layer passes are slow on JAX
    [result] = run_study([activation], [init], depth=depth, width=256, batch=400, seed=1)
    assert result.verdict == verdict, result.flags


def test_study_numbers_equal_numpy_on_the_same_weights(tmp_path):
    path = tmp_path / "study.json"
    assert main(["study", "--activation", "tanh,relu", "--init", "he_normal", "--depth", "4",
                 "--width", "64", "--batch", "128", "--seed", "3", "--json", str(path)]) == 0
    payload = json.loads(path.read_text())
    assert payload["config"]["backend"] == keras.backend.backend()
    data = np.random.default_rng(3).standard_normal((128, 64)).astype("float32")
    functions = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0)}
    for result in payload["results"]:
        model = build_stack(result["activation"], "he_normal", depth=4, width=64, seed=3)
        h = data
        for layer, row in zip(model.layers, result["layers"], strict=True):
            h = functions[result["activation"]](h @ keras.ops.convert_to_numpy(layer.kernel))
            assert row["mean"] == pytest.approx(float(h.mean()), abs=1e-5)
            assert row["std"] == pytest.approx(float(h.std()), rel=1e-4)
            assert row["zero_fraction"] == pytest.approx(float(np.mean(h == 0)), abs=1e-6)
            assert sum(row["histogram"]["counts"]) == h.size
        assert (result["layers"][0]["saturated_fraction"] is None) == (
            result["activation"] == "relu")  # not applicable: written as null


def test_study_json_to_stdout_replaces_the_table(capsys):
    assert main(["study", "--activation", "sigmoid", "--init", "normal:0.01", "--depth", "2",
                 "--width", "16", "--batch", "32", "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [r["init"] for r in payload["results"]] == ["normal:0.01"]


def test_study_seed_repeats_and_changes():
    def stds(seed):
        [result] = run_study(["tanh"], ["glorot_normal"], depth=3, width=32, batch=64, seed=seed)
        return [row["std"] for row in result.layers]

    assert stds(5) == stds(5)
    assert stds(5) != stds(6)


def test_study_help_has_no_literal_double_percent(capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out and "% exactly zero" in " ".join(out.split())


def test_study_plot_draws_one_row_per_combination(tmp_path):
    pytest.importorskip("matplotlib")
    results = run_study(["tanh", "relu"], ["normal:0.01", "he_normal"], depth=12, width=32,
                        batch=64)
    from keras_initkit.cli.study import plot

    figure = plot(results)
    # 4 rows; per row mean, std and 10 histogram panels (12 layers, spread).
    assert len(figure.axes) == 4 * (2 + 10)
    path = tmp_path / "sub" / "study.png"
    path.parent.mkdir()  # the folder must exist (a missing one is a usage error)
    assert main(["study", "--activation", "tanh", "--init", "glorot_normal", "--depth", "3",
                 "--width", "16", "--batch", "32", "--plot", str(path)]) == 0
    assert path.read_bytes()[:4] == b"\x89PNG"
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it
    assert os.listdir(path.parent) == ["study.png"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("args", "option", "allowed"),
    [
        (["--activation", "tanhh"], "--activation", "relu"),
        (["--activation", "maxout"], "--activation", "tanh"),
        (["--init", "xavier"], "--init", "glorot_normal"),
        (["--init", "normal:-1"], "--init", "normal:0.01"),
        (["--init", "normal:abc"], "--init", "normal:0.01"),
        (["--depth", "0"], "--depth", r"an integer in [1, 1000]"),
        (["--width", "-3"], "--width", r"an integer in [1, 4096]"),
        (["--batch", "x"], "--batch", r"an integer in [1, 20000]"),
        (["--seed", "99999999999999999999999"], "--seed", "an integer in [0, 4294967295]"),
        (["--width", "200000"], "--width", "an integer in [1, 4096]"),
        (["--json", "/proc/x.json"], "--json", "cannot write '/proc/x.json'"),
        (["--plot", "/nonexistent/dir/x.png"], "--plot", "does not exist"),
        (["--plot", "out.txt"], "--plot", ".png"),
        (["--backend", "mxnet"], "--backend", "tensorflow"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, option, allowed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert option in err and allowed in err


def test_unwritable_output_paths_are_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for args in (["study", "--json", str(blocker / "out.json")],
                 ["study", "--plot", str(blocker / "out.png")],
                 ["study", "--json", str(tmp_path)],
                 ["demo", "--out", str(blocker)],
                 ["demo", "--out", str(blocker / "run")]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and args[1] in err, err


def test_demo_takes_one_activation(capsys, tmp_path):
    assert main(["demo", "--activation", "tanh,relu", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--activation" in err and len(err.strip().splitlines()) == 1


# The launcher is the same on every backend: its subprocess tests run in the TF session.
launcher_test = pytest.mark.skipif(
    SCRIPT is None or keras.backend.backend() != "tensorflow",
    reason="needs the installed keras-initkit script; run in the TensorFlow session")


@launcher_test
def test_console_script_errors_without_traceback(tmp_path):
    result = _command("study", "--init", "he_normall", "--json", str(tmp_path / "x.json"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--init" in lines[0] and "he_normal" in lines[0], result.stderr
    assert not (tmp_path / "x.json").exists()


@launcher_test
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_console_script_backend_option(backend, tmp_path):
    pytest.importorskip(backend)
    path = tmp_path / "study.json"
    result = _command("study", "--backend", backend, "--activation", "relu", "--init",
                      "he_normal", "--depth", "2", "--width", "8", "--batch", "16",
                      "--json", str(path), env={"KERAS_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr
    assert json.loads(path.read_text())["config"]["backend"] == backend
    assert result.stderr == ""  # TensorFlow's start-up lines are kept out of the output


@pytest.mark.skipif(SCRIPT is None, reason="the keras-initkit script is not installed")
def test_demo_writes_the_run_folder_and_the_diagnosis(tmp_path):
    out = tmp_path / "run"
    result = _command("demo", "--epochs", "2", "--depth", "6", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    bad, good = summary["runs"]["bad_init"], summary["runs"]["reinitialized"]
    # N(0, 0.01^2) under 6 tanh layers: stuck near chance; reinitialize(model) trains.
    assert bad["test_accuracy"] < 0.3
    assert good["test_accuracy"] > 0.8
    assert any(line[0].startswith("vanishing") for line in bad["at_start"])
    assert good["at_start"] == []
    assert "vanishing in" in result.stdout and "test accuracy" in result.stdout
    # GradientStats' story: the tiny weights' updates barely move them, and the
    # reinitialized run has nothing to say about gradients.
    said_bad, _, said_good = result.stdout.partition("reinitialize(model): test accuracy")
    said_bad = said_bad.partition("init normal:0.01: test accuracy")[2]
    assert "updates too small to learn in" in said_bad, said_bad
    assert "gradients" not in said_good and "updates" not in said_good, said_good
    assert any(line[0].startswith("updates too small") for line in bad["gradients_at_start"])
    assert good["gradients_at_start"] == [] and good["gradients_at_end"] == []
    assert all(len(line) <= 80 for line in result.stdout.splitlines() if str(out) not in line)
    for run in ("bad_init", "reinitialized"):
        files = set(os.listdir(out / run))
        assert {"activation_stats.csv", "activation_stats.jsonl", "activations"} <= files
        assert os.listdir(out / run / "activations")[0].startswith("events.out.tfevents")
        assert {"layer_stats.png", "histograms.png", "histograms_over_time.png"} <= files
        assert {"gradient_stats.csv", "gradient_stats.jsonl", "gradient_stats.png"} <= files
