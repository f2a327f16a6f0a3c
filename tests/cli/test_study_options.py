"""`keras-initkit study --batchnorm / --dropout / --steps / --gradients` and the symmetry of
zero and constant init: the lectures' other lessons, checked with numbers.

Each statistical tolerance is stated where it is used. Sizes are small (a few hundred units
and rows) so the file runs in about a minute per backend.
"""

import json
import math

import keras
import numpy as np
import pytest

from keras_initkit.cli import main
from keras_initkit.cli._choices import make_initializer
from keras_initkit.cli.study import TASK_OUTPUTS, build_stack, format_result, run_study


def _column(result, key):
    return [row[key] for row in result.layers]


# -- batch normalization -------------------------------------------------------------------
def test_batchnorm_keeps_a_tiny_init_at_the_scale_of_layer_1():
    # N(0, 0.01^2) under 10 tanh layers: std 0.21 at layer 1 falls ~4.5x per layer
    # (0.01 * sqrt(256) = 0.16 per layer at this width) to ~1e-7; BatchNormalization
    # rescales every pre-activation to unit variance, so tanh(N(0, 1)) has std ~0.63 at
    # every depth.
    kwargs = dict(depth=10, width=256, batch=400, seed=0)
    [plain] = run_study(["tanh"], ["normal:0.01"], **kwargs)
    [normalized] = run_study(["tanh"], ["normal:0.01"], batchnorm=True, **kwargs)
    plain_std, normal_std = _column(plain, "std"), _column(normalized, "std")
    assert plain_std[-1] < 1e-5 and plain.verdict == "collapsed"
    assert normal_std[-1] == pytest.approx(normal_std[0], rel=0.05)
    assert normal_std[-1] == pytest.approx(0.627, abs=0.02)  # std of tanh(N(0, 1))
    assert normalized.verdict == "healthy"


def test_batchnorm_layer_equals_numpy_with_the_batch_statistics():
    model = build_stack("tanh", "normal:0.01", depth=2, width=32, seed=4, batchnorm=True)
    assert [layer.name for layer in model.layers] == [
        "layer_1", "layer_1_bn", "layer_1_act", "layer_2", "layer_2_bn", "layer_2_act"]
    [result] = run_study(["tanh"], ["normal:0.01"], depth=2, width=32, batch=64, seed=4,
                         batchnorm=True)
    h = np.random.default_rng(4).standard_normal((64, 32)).astype("float64")
    for layer, row in zip(model.layers[::3], result.layers, strict=True):
        z = h @ keras.ops.convert_to_numpy(layer.kernel).astype("float64")
        # Keras's BatchNormalization: epsilon 1e-3, gamma 1 and beta 0 at initialization.
        h = np.tanh((z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-3))
        assert row["std"] == pytest.approx(h.std(), rel=1e-4)
        assert row["mean"] == pytest.approx(h.mean(), abs=1e-5)


# -- dropout ---------------------------------------------------------------------------------
def test_dropout_training_and_inference_std_side_by_side(capsys):
    p = 0.5
    [result] = run_study(["tanh"], ["glorot_normal"], depth=3, width=256, batch=400,
                         dropout=p)
    first = result.layers[0]
    # Layer 1 sees the same input in both modes. Inference mode: dropout is the identity.
    assert first["inference_std"] == pytest.approx(first["std"], rel=1e-5)
    # Inverted dropout keeps the mean and scales E[h^2] by 1/(1-p): with n = 102,400
    # values, the sample second moment is within 2% with overwhelming probability.
    second_moment = first["std"] ** 2 + first["mean"] ** 2
    expected = math.sqrt(second_moment / (1 - p) - first["mean"] ** 2)
    assert first["train_std"] == pytest.approx(expected, rel=0.02)
    assert first["train_std"] > 1.3 * first["inference_std"]
    for row in result.layers:  # means agree (both ~0, within a few 1e-3)
        assert abs(row["train_mean"] - row["inference_mean"]) < 0.02
    # Deeper, the training-mode inputs are louder too: the gap grows.
    assert result.layers[-1]["train_std"] / result.layers[-1]["inference_std"] > (
        first["train_std"] / first["inference_std"])
    text = format_result(result)
    assert "std train" in text and "std infer" in text
    assert all(len(line) <= 80 for line in text.splitlines())


@pytest.mark.parametrize("rate", ["1", "1.5", "-0.1", "abc", "nan"])
def test_dropout_outside_0_1_is_refused(rate, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "--dropout", rate])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--dropout" in err and "[0, 1)" in err, err
    assert repr(rate) in err


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(dropout=1.0), "dropout"), (dict(dropout=-0.5), "dropout"), (dict(steps=-1), "steps"),
    (dict(steps=1.5), "steps"), (dict(steps=2, learning_rate=0.0), "learning_rate"),
    (dict(learning_rate=0.1), "learning_rate"), (dict(batchnorm="yes"), "batchnorm"),
])
def test_run_study_refuses_bad_options(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        run_study(["tanh"], ["glorot_normal"], depth=2, width=8, batch=16, **kwargs)


# -- symmetry ----------------------------------------------------------------------------------
@pytest.mark.parametrize("init", ["zeros", "constant:0.05", "constant:-0.3"])
def test_zero_and_constant_init_are_symmetric(init, tmp_path, capsys):
    path = tmp_path / "study.json"
    assert main(["study", "--activation", "tanh,relu", "--init", f"{init},glorot_normal",
                 "--depth", "3", "--width", "48", "--batch", "64", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    results = json.loads(path.read_text())["results"]
    for result in results:
        distinct = [layer["distinct_units"] for layer in result["layers"]]
        if result["init"] == init:
            assert result["verdict"] == "symmetric", result["flags"]
            assert distinct == [1, 1, 1]
            assert "1 distinct unit of 48" in result["flags"][0]
        else:
            assert distinct == [48, 48, 48] and result["verdict"] == "healthy"
    block = out.split(f"tanh with {init}:")[1].split("\n\n")[0]
    assert "distinct" in block.splitlines()[1]
    assert [line.split()[-1] for line in block.splitlines()[2:5]] == ["1", "1", "1"]
    assert "symmetric" in out.split("verdict")[-1]


def test_constant_init_stays_symmetric_through_training():
    # Every unit of a layer gets the same gradient (the read-out starts constant too), so
    # training cannot tell them apart: still 1 distinct unit after 20 steps, while the
    # loss moves (the one function each layer computes does learn).
    [result] = run_study(["tanh"], ["constant:0.05"], depth=3, width=32, batch=64,
                         steps=20, learning_rate=0.1)
    assert _column(result.trained, "distinct_units") == [1, 1, 1]
    assert result.trained.verdict == "symmetric"
    assert result.trained.loss < 0.8 * result.loss
    [healthy] = run_study(["tanh"], ["glorot_normal"], depth=3, width=32, batch=64,
                          steps=20, learning_rate=0.1)
    assert _column(healthy.trained, "distinct_units") == [32, 32, 32]


# -- training steps ------------------------------------------------------------------------------
def test_steps_train_and_show_the_table_again(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path, picture = tmp_path / "study.json", tmp_path / "study.png"
    assert main(["study", "--activation", "tanh", "--init", "glorot_normal,normal:1.0",
                 "--depth", "3", "--width", "32", "--batch", "64", "--steps", "30",
                 "--learning-rate", "0.05", "--json", str(path), "--plot",
                 str(picture)]) == 0
    out = capsys.readouterr().out
    payload = json.loads(path.read_text())
    assert payload["config"]["steps"] == 30 and payload["config"]["learning_rate"] == 0.05
    for result in payload["results"]:
        after = result["after_training"]
        assert after["steps"] == 30 and result["steps"] == 0
        assert after["loss"] < result["loss"]  # SGD on the task lowers its loss
        assert [row["std"] for row in after["layers"]] != [
            row["std"] for row in result["layers"]]
        assert f"{result['activation']} with {result['init']} after 30 SGD steps" in out
    assert "after 30 SGD steps:" in out  # the second summary
    assert picture.read_bytes()[:4] == b"\x89PNG"
    from keras_initkit.cli.study import plot

    results = run_study(["tanh"], ["glorot_normal"], depth=3, width=16, batch=32, steps=2)
    figure = plot(results)
    assert len(figure.axes) == 2 * (2 + 3)  # a second row for the trained stack


def test_learning_rate_without_steps_is_refused(capsys):
    assert main(["study", "--learning-rate", "0.1", "--depth", "2", "--width", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--learning-rate" in err and "--steps" in err


@pytest.mark.parametrize(("args", "option", "allowed"), [
    (["--steps", "-1"], "--steps", "an integer in [0, 100000]"),
    (["--steps", "x"], "--steps", "an integer in [0, 100000]"),
    (["--learning-rate", "0"], "--learning-rate", "a number > 0"),
    (["--learning-rate", "inf"], "--learning-rate", "a number > 0"),
    (["--init", "constant:x"], "--init", "constant:0.1"),
    (["--init", "constant:nan"], "--init", "constant:0.1"),
])
def test_bad_training_options_are_one_line(args, option, allowed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err and allowed in err, err


# -- gradients -------------------------------------------------------------------------------------
def _numpy_gradients(init, depth, width, batch, seed):
    """Kernel and output gradients of the documented task's loss, by hand (tanh, no BN)."""
    x = np.random.default_rng(seed).standard_normal((batch, width)).astype("float32")
    rng = np.random.default_rng(seed + 1)
    hidden = rng.standard_normal((width, width)) / math.sqrt(width)
    out = rng.standard_normal((width, TASK_OUTPUTS)) / math.sqrt(width)
    targets = np.tanh(x @ hidden) @ out
    targets = (targets / targets.std()).astype("float32").astype("float64")
    model = build_stack("tanh", init, depth=depth, width=width, seed=seed)
    kernels = [keras.ops.convert_to_numpy(layer.kernel).astype("float64")
               for layer in model.layers]
    readout = keras.ops.convert_to_numpy(
        make_initializer(init, "tanh", seed + depth)((width, TASK_OUTPUTS))).astype("float64")
    hs = [x.astype("float64")]
    for kernel in kernels:
        hs.append(np.tanh(hs[-1] @ kernel))
    y = hs[-1] @ readout
    delta_h = (2 * (y - targets) / y.size) @ readout.T
    kernel_rms, output_rms = [], []
    for i in reversed(range(depth)):
        output_rms.append(np.sqrt(np.mean(delta_h**2)))
        delta_z = delta_h * (1 - hs[i + 1] ** 2)
        kernel_rms.append(np.sqrt(np.mean((hs[i].T @ delta_z) ** 2)))
        delta_h = delta_z @ kernels[i].T
    loss = float(np.mean((y - targets) ** 2))
    return kernel_rms[::-1], output_rms[::-1], loss


def test_gradients_equal_a_numpy_backward_pass():
    [result] = run_study(["tanh"], ["glorot_normal"], depth=4, width=32, batch=64, seed=2,
                         gradients=True)
    kernel_rms, output_rms, loss = _numpy_gradients("glorot_normal", 4, 32, 64, 2)
    assert result.loss == pytest.approx(loss, rel=1e-5)
    assert _column(result, "gradient_rms") == pytest.approx(kernel_rms, rel=1e-4)
    assert _column(result, "backprop_rms") == pytest.approx(output_rms, rel=1e-4)


def test_gradients_glorot_and_bengio_figure_7(tmp_path):
    # Glorot & Bengio (2010), figure 7: with tanh and the "standard" init
    # U[-1/sqrt(n), 1/sqrt(n)] (variance 1/(3n)) each layer back multiplies the gradient's
    # variance by about 1/3, so dL/dh at layer 1 is ~0.006 of layer 10's (measured
    # 0.0063-0.0065 on the three backends); with normalized (Xavier) init it stays within a
    # few times (0.38-0.39). The kernel gradients dL/dW stay level in both (their section
    # 4.2.2: smaller activations upward offset the smaller dL/dh downward).
    ratios = {}
    for init in ("standard", "glorot_uniform"):
        [result] = run_study(["tanh"], [init], depth=10, width=256, batch=400,
                             gradients=True)
        h, w = _column(result, "backprop_rms"), _column(result, "gradient_rms")
        ratios[init] = (h[0] / h[-1], w[0] / w[-1])
        assert all(a < b for a, b in zip(h, h[1:], strict=False)), h  # shrinking downward
    assert ratios["standard"][0] < 0.02
    assert 0.2 < ratios["glorot_uniform"][0] < 1
    for init in ratios:
        assert 0.5 < ratios[init][1] < 2, ratios
    pytest.importorskip("matplotlib")
    path = tmp_path / "gradients.png"
    assert main(["study", "--activation", "tanh", "--init", "standard,glorot_uniform",
                 "--depth", "4", "--width", "32", "--batch", "64", "--gradients",
                 "--plot", str(path)]) == 0
    assert path.read_bytes()[:4] == b"\x89PNG"
    from keras_initkit.cli.study import plot

    figure = plot(run_study(["tanh"], ["standard"], depth=8, width=32, batch=64,
                            gradients=True))
    panel = figure.axes[2]
    assert panel.get_title() == "gradient RMS per layer" and panel.get_yscale() == "log"
    assert [line.get_label() for line in panel.get_lines()] == ["dL/dh", "dL/dW"]


def test_every_option_together(capsys):
    assert main(["study", "--activation", "relu", "--init", "he_normal", "--depth", "3",
                 "--width", "32", "--batch", "64", "--batchnorm", "--dropout", "0.2",
                 "--gradients", "--steps", "3", "--json", "-"]) == 0
    payload = json.loads(capsys.readouterr().out)
    [result] = payload["results"]
    for snapshot in (result, result["after_training"]):
        for row in snapshot["layers"]:
            assert {"distinct_units", "train_std", "inference_std", "gradient_rms",
                    "backprop_rms"} <= set(row)
            assert row["gradient_rms"] > 0 and row["inference_std"] > 0
    assert payload["config"]["batchnorm"] is True and payload["config"]["dropout"] == 0.2


def test_a_stack_that_blew_up_is_non_finite_not_symmetric():
    # ReLU with N(0, 10^2) weights reaches Inf, and SGD then fills the weights with NaN:
    # every unit is NaN (1 distinct column), which is a broken run, not a symmetric one.
    [result] = run_study(["relu"], ["normal:10"], depth=12, width=64, batch=64,
                         gradients=True, steps=2)
    assert not math.isfinite(result.trained.loss)
    assert result.trained.verdict == "non-finite", result.trained.flags
    assert not any(flag.startswith("symmetric") for flag in result.trained.flags)
    text = format_result(result)  # NaN and Inf are data: shown, never a crash
    assert "dL/dh rms" in text
