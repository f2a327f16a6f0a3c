"""Bad input: one ValueError per mistake, raised early, naming argument, allowed values, input."""

import keras
import pytest

from keras_initkit import initializers as ki


def test_scale_must_be_positive():
    with pytest.raises(ValueError, match=r"scale must be a positive number; got 0"):
        ki.VarianceScaling(scale=0)
    with pytest.raises(ValueError, match=r"scale must be a positive number; got -1.0"):
        ki.VarianceScaling(scale=-1.0)


def test_gain_must_be_positive():
    with pytest.raises(ValueError, match=r"gain must be a positive number; got -2"):
        ki.HeNormal(gain=-2)


def test_unknown_mode():
    with pytest.raises(
        ValueError,
        match=r"mode must be one of 'fan_in', 'fan_out', 'fan_avg', 'fan_geo_avg'; got 'fanin'",
    ):
        ki.VarianceScaling(mode="fanin")
    with pytest.raises(ValueError, match="mode must be one of"):
        ki.HeNormal(mode="fan_inn")


def test_unknown_distribution():
    with pytest.raises(
        ValueError,
        match=r"distribution must be one of 'truncated_normal', 'untruncated_normal', "
        r"'uniform', 'normal'; got 'gaussian'",
    ):
        ki.VarianceScaling(distribution="gaussian")


def test_unknown_nonlinearity():
    with pytest.raises(ValueError, match=r"nonlinearity must be one of .*tanh.*got 'tanhh'"):
        ki.GlorotNormal(nonlinearity="tanhh")
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        ki.Orthogonal(nonlinearity="rellu")


def test_nonlinearity_object_is_not_serializable_so_rejected():
    with pytest.raises(ValueError, match="nonlinearity must be a name"):
        ki.HeNormal(nonlinearity=keras.layers.LeakyReLU())


def test_param_where_nonlinearity_takes_none():
    with pytest.raises(
        ValueError, match=r"param must be None for nonlinearity 'relu'.*got param=0.1"
    ):
        ki.HeNormal(param=0.1)


def test_param_out_of_range():
    with pytest.raises(
        ValueError,
        match=r"param \(negative_slope of 'leaky_relu'\) must be a finite number >= 0; got -0.2",
    ):
        ki.HeNormal(nonlinearity="leaky_relu", param=-0.2)
    with pytest.raises(
        ValueError, match=r"param \(pieces of 'maxout'\) must be an int in \[2, 2\*\*63\]"
    ):
        ki.LecunNormal(nonlinearity="maxout", param=1)


@pytest.mark.parametrize("shape", [(3, 0), (0, 5), (0,), (2, 0, 4)])
def test_shape_with_zero_dimension_is_empty_as_in_keras(shape):
    for init in (ki.HeNormal(seed=1), ki.VarianceScaling(distribution="uniform"), ki.Fixup(),
                 ki.ResidualZeros()):
        values = init(shape)
        assert tuple(values.shape) == shape
        assert tuple(keras.initializers.HeNormal(seed=1)(shape).shape) == shape
    if len(shape) >= 2:
        assert tuple(ki.Orthogonal(seed=1)(shape).shape) == shape


def test_shape_with_negative_dimension():
    with pytest.raises(ValueError, match=r"shape must be a tuple of non-negative ints.*\(-1, 4\)"):
        ki.GlorotUniform()((-1, 4))
    with pytest.raises(ValueError, match="shape must be a tuple of non-negative ints"):
        ki.ResidualZeros()((4, -1))


def test_orthogonal_needs_rank_two():
    with pytest.raises(ValueError, match=r"shape must have rank >= 2 for Orthogonal.*\(5,\)"):
        ki.Orthogonal()((5,))


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool"])
def test_integer_dtype(dtype):
    message = r"dtype must be a floating-point dtype \(float16, bfloat16, float32, float64\)"
    for init in (ki.HeNormal(), ki.Orthogonal(), ki.ResidualZeros(), ki.Fixup()):
        with pytest.raises(ValueError, match=message):
            init((4, 4), dtype=dtype)


def test_bad_axes_and_fans():
    with pytest.raises(ValueError, match="input_axes must be None or a list of ints"):
        ki.VarianceScaling(input_axes="0")
    with pytest.raises(ValueError, match="fans must be None or"):
        ki.HeNormal(fans=(0, 3))
    with pytest.raises(ValueError, match="input_axes must index the kernel's 2 axes"):
        ki.VarianceScaling(input_axes=[2], output_axes=[1])((3, 4))


def test_bad_seed_is_keras_error():
    with pytest.raises(ValueError, match="seed"):
        ki.HeNormal(seed="abc")


def test_named_initializers_fix_their_scale_and_distribution():
    with pytest.raises(TypeError):
        ki.HeNormal(scale=2.0)
    with pytest.raises(TypeError):
        ki.GlorotUniform(mode="fan_in")
