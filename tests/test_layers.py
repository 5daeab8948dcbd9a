import ast
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_close, numeric_grad

import backprop as bp
from backprop import layers as L
from backprop.activations import names as activation_names

ELEMENTWISE = [a for a in activation_names() if a != "softmax"]


def build(layer, backend, in_dim=3, dtype="float64", seed=0):
    layer.build(in_dim, backend, np.random.default_rng(seed), backend.dtype(dtype))
    return layer


def layer_cases():
    return [
        ("dense-" + a, lambda a=a: L.Dense(4, activation=a)) for a in [*ELEMENTWISE, "softmax"]
    ] + [
        ("dense-nobias", lambda: L.Dense(2, use_bias=False)),
        (
            "dense-l1l2",
            lambda: L.Dense(2, "tanh", kernel_regularizer=bp.regularizers.Regularizer(0.1, 0.2)),
        ),
        ("activation-sigmoid", lambda: L.Activation("sigmoid")),
        ("activation-softmax", lambda: L.Activation("softmax")),
        ("dropout", lambda: L.Dropout(0.4)),
    ]


CASES = layer_cases()


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_contract_and_gradients(make, backend64, rng):
    """Every layer: params/grads keys match, outputs stay on the device, and backward equals
    float64 central differences of the scalar sum(forward(x) * r) in x and in every param."""
    b = backend64
    layer = build(make(), b)
    x_host = rng.uniform(-2, 2, (5, 3))
    # keep inputs away from ReLU kinks so central differences measure a slope
    x_host = np.where(np.abs(x_host) < 0.1, 0.5, x_host)
    out_dim = layer.output_dim(3)
    r = rng.normal(size=(5, out_dim))
    seed = 7

    def forward(x_np, params=None):
        if params is not None:
            for k, v in params.items():
                layer.params[k] = b.asarray(v, "float64")
        layer.rng = np.random.default_rng(seed)  # the same dropout mask every call
        return layer.forward(b.asarray(x_np, "float64"), training=True)

    def scalar(x_np, params=None):
        y = bp.to_numpy(forward(x_np, params))
        value = float(np.sum(y * r))
        if params is not None and layer.penalty() is not None:
            value += float(bp.to_numpy(layer.penalty()))
        return value

    y = forward(x_host)
    assert b.owns(y) and y.shape == (5, out_dim)
    dx = layer.backward(b.asarray(r, "float64"))
    assert b.owns(dx) and dx.shape == (5, 3)
    assert set(layer.grads) == set(layer.params)
    for k, g in layer.grads.items():
        assert b.owns(g) and g.shape == layer.params[k].shape

    assert_close(dx, numeric_grad(scalar, x_host), b, rtol=1e-6, atol=1e-8)
    params_host = {k: bp.to_numpy(v) for k, v in layer.params.items()}
    for k in params_host:

        def f(p, k=k):
            return scalar(x_host, {**params_host, k: p})

        expected = numeric_grad(f, params_host[k])
        forward(x_host, params_host)
        layer.backward(b.asarray(r, "float64"))
        assert_close(layer.grads[k], expected, b, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("make", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_backward_before_forward_is_an_error(make, backend):
    layer = build(make(), backend, dtype="float32")
    dy = backend.zeros((2, layer.output_dim(3)), backend.xp.float32)
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        layer.backward(dy)


def test_unbuilt_layer_forward_is_an_error():
    with pytest.raises(RuntimeError, match="not built"):
        L.Dense(2).forward(np.zeros((1, 2)))


def test_dense_shapes_follow_the_math(backend):
    layer = build(L.Dense(5, input_dim=3), backend, dtype="float32")
    assert layer.params["W"].shape == (3, 5) and layer.params["b"].shape == (5,)
    assert layer.count_params() == 20
    with pytest.raises(
        ValueError, match=r"expected input of shape \(n, 3\), received shape \(2, 4\)"
    ):
        layer.forward(backend.zeros((2, 4), backend.xp.float32))


def test_dense_defaults_are_keras(rng):
    layer = L.Dense(3)
    assert layer.activation.name == "linear"
    assert layer.kernel_initializer.name == "glorot_uniform"
    assert layer.bias_initializer.name == "zeros"
    b = bp.backend.resolve("numpy")
    build(layer, b, in_dim=200)
    W = bp.to_numpy(layer.params["W"])
    limit = np.sqrt(6 / (200 + 3))
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.9 * limit
    assert not bp.to_numpy(layer.params["b"]).any()


def test_dropout_scales_and_is_identity_at_inference(backend):
    layer = build(L.Dropout(0.25), backend, in_dim=4000, dtype="float32")
    x = backend.asarray(np.ones((50, 4000)), "float32")
    y = bp.to_numpy(layer.forward(x, training=True))
    kept = y != 0
    # kept entries are scaled by 1/(1 - rate) so that E[y] = x
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    # 200,000 Bernoulli(0.75) draws: the kept fraction is within 5 standard deviations
    assert abs(kept.mean() - 0.75) < 5 * np.sqrt(0.75 * 0.25 / kept.size)
    assert_close(layer.forward(x, training=False), np.ones((50, 4000)), backend)


def test_dropout_same_seed_same_mask_on_every_backend(backend):
    masks = []
    for b in (bp.backend.resolve("numpy"), backend):
        layer = build(L.Dropout(0.5), b, in_dim=6, dtype="float32", seed=3)
        masks.append(bp.to_numpy(layer.forward(b.asarray(np.ones((4, 6)), "float32"), True)))
    np.testing.assert_array_equal(masks[0], masks[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 0}, r"units to be a positive integer, received units=0"),
        ({"units": 2.5}, r"received units=2.5"),
        ({"units": 2, "input_dim": -1}, r"input_dim=-1"),
        ({"units": 2, "activation": "swishy"}, r"Unknown activation 'swishy'.*relu"),
        ({"units": 2, "kernel_initializer": "nope"}, r"Unknown initializer 'nope'.*he_uniform"),
    ],
)
def test_dense_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.Dense(**kwargs)


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.5"])
def test_dropout_bad_rate(rate):
    with pytest.raises(ValueError, match="rate must be a float in"):
        L.Dropout(rate)


def test_dropout_can_be_the_first_layer(backend, tmp_path):
    """As in Keras: Dropout(rate, input_shape=...) first builds the model and saves its input."""
    first = L.Dropout(0.5, input_shape=(3,))
    assert first.input_shape == (3,) and first.input_dim == 3
    model = bp.Sequential(
        [first, L.Dense(2, "softmax")], backend=backend.name, device=backend.device, seed=0
    )
    assert model.built and model.input_shape == (3,) and model.output_shape == (2,)
    assert first.get_config()["input_shape"] == [3]
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 3)), rng.integers(0, 2, 16)
    model.fit(X, y, epochs=1, batch_size=8, verbose=0)  # the masks drop some inputs
    W, b = model.get_weights()
    z = X @ W + b  # inference: no dropout, the input goes to the Dense layer as it is
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.npz")
    assert bp.load(tmp_path / "m.npz").get_config() == model.get_config()
    with pytest.raises(ValueError, match="input_shape"):
        L.Dropout(0.5, input_shape=(0,))


def test_from_config_roundtrip():
    layer = L.Dense(3, "leaky_relu", input_dim=2, kernel_regularizer="l2", name="d")
    again = L.from_config("Dense", layer.get_config())
    assert again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="Unknown layer class 'Conv3D'"):
        L.from_config("Conv3D", {})


class Scale(L.Layer):
    """A custom layer: y = s * x with a trainable scalar s (as a user would write one)."""

    def __init__(self, init: float = 2.0, name=None):
        super().__init__(name)
        self.init = init

    def build(self, input_dim, backend, rng, dtype):
        super().build(input_dim, backend, rng, dtype)
        self.params = {"s": backend.asarray([self.init], dtype)}

    def forward(self, x, training=False):
        self.x, self._has_forward = x, True
        return self.params["s"] * x

    def backward(self, dy):
        self.grads["s"] = self.xp.reshape(self.xp.sum(dy * self.x), (1,))
        return self.params["s"] * dy

    def get_config(self):
        return {"name": self.name, "init": self.init}


def test_custom_layers_work_with_gradcheck_explain_and_files(tmp_path, rng):
    model = bp.Sequential([L.Dense(3, "tanh", input_dim=2), Scale(), L.Dense(1, "sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam")
    X, y = rng.normal(size=(8, 2)), rng.integers(0, 2, 8)
    assert bp.gradcheck(model, X, y) < 1e-7
    assert "Scale" in model.explain(X, y, print_fn=None)
    model.save(tmp_path / "m.npz")
    again = bp.load(tmp_path / "m.npz")
    assert isinstance(again.layers[1], Scale)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


# -- issue 19.4: initializers a config cannot hold are never replaced by a default ------------


def _gamma_two(shape, rng):
    return np.full(shape, 2.0)


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (
            lambda: bp.layers.BatchNormalization(gamma_initializer=lambda s, r: np.full(s, 2.0)),
            "gamma_initializer",
        ),
        (
            lambda: bp.layers.BatchNormalization(moving_variance_initializer=_gamma_two),
            "moving_variance_initializer",
        ),
        (lambda: bp.layers.LayerNormalization(beta_initializer=_gamma_two), "beta_initializer"),
        (lambda: bp.layers.Dense(3, kernel_initializer=_gamma_two), "kernel_initializer"),
        (lambda: bp.layers.Dense(3, bias_initializer=_gamma_two), "bias_initializer"),
    ],
)
def test_a_clone_of_a_custom_initializer_function_is_refused_not_zeros(make, argument):
    """from_config used to put 'zeros' in its place: a cloned BatchNormalization started with
    gamma = 0 and moving variance = 0 (the path the shared-layer error recommends)."""
    layer = make()
    clone = bp.layers.from_config(type(layer).__name__, layer.get_config())
    name = type(layer).__name__
    match = rf"{name} .*{argument} is the function .* which a config cannot hold.*Initializer"
    with pytest.raises(ValueError, match=match):
        bp.Sequential([bp.layers.Dense(3, input_dim=2), clone])
    clone = bp.layers.from_config(type(layer).__name__, layer.get_config())
    with pytest.raises(ValueError, match=match):  # built by fit
        model = bp.Sequential([clone])
        model.compile(loss="mse", optimizer="sgd")
        model.fit(np.ones((4, 3)), np.ones((4, 3)), verbose=0)
    # its config still says what it was, so a clone of the clone is refused too
    assert clone.get_config()[argument] == layer.get_config()[argument]


class Twos(bp.initializers.Initializer):
    """A user's initializer object: found again by its name."""

    name = "twos_for_test_layers"

    def __init__(self, scale=1.0):
        self.scale = scale

    def __call__(self, shape, rng):
        return np.full(shape, 2.0 * self.scale)

    def get_config(self):
        return {"name": self.name, "scale": self.scale}


class ConstantTimesThree(bp.initializers.Constant):
    """Keeps Constant's name: its config would rebuild a plain Constant."""

    def __call__(self, shape, rng):
        return np.full(shape, 3.0 * self.value)


def test_an_initializer_object_is_cloned_and_a_nameless_subclass_refused():
    layer = bp.layers.BatchNormalization(gamma_initializer=Twos(1.5))
    clone = bp.layers.from_config("BatchNormalization", layer.get_config())
    model = bp.Sequential([bp.layers.Dense(2, input_dim=2), clone])
    np.testing.assert_array_equal(model.get_weights()[2], [3.0, 3.0])
    layer = bp.layers.Dense(2, bias_initializer=ConstantTimesThree(1.0))
    clone = bp.layers.from_config("Dense", layer.get_config())
    with pytest.raises(ValueError, match=r"Dense .*bias_initializer is .*ConstantTimesThree"):
        bp.Sequential([bp.layers.Dense(2, input_dim=2), clone])


def test_a_saved_custom_initializer_loads_and_still_cannot_be_drawn(tmp_path):
    """Loading draws nothing (the saved weights are the values); a clone of the loaded model
    that must draw is refused, not zeros."""
    layer = bp.layers.BatchNormalization(gamma_initializer=_gamma_two)
    model = bp.Sequential([bp.layers.Dense(3, input_dim=2), layer], seed=0)
    model.save(tmp_path / "m.npz")
    loaded = bp.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.get_weights()[2], [2.0, 2.0, 2.0])
    again = bp.layers.from_config("BatchNormalization", loaded.layers[1].get_config())
    with pytest.raises(ValueError, match="gamma_initializer is the function '_gamma_two'"):
        bp.Sequential([bp.layers.Dense(3, input_dim=2), again])


# -- the package: one module per kind of layer, one namespace to its users -----------------------

# the kinds of layers; a private module (_im2col) holds helpers that some kinds share
LAYER_MODULES = ["core", "regularization", "normalization", "reshaping", "convolutional", "pooling"]


def test_every_layer_registers_when_only_the_package_is_imported():
    """``import backprop.layers`` alone loads every module of it, so every class is known by name
    (a model file names its layers' classes; loading finds them only in modules already run)."""
    code = (
        "import sys, backprop.layers as L\n"
        "print(sorted(L._known_layers()))\n"
        "print(sorted(m for m in sys.modules if m.startswith('backprop.layers.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    names = ["Activation", "BatchNormalization", "Dense", "Dropout", "LayerNormalization"]
    names += ["Flatten", "Reshape"]
    assert set(names) <= set(eval(out[0]))  # the private base _Normalization may be listed too
    files = Path(L.__file__).parent.glob("*.py")
    loaded = [m for m in eval(out[1]) if not m.split(".")[-1].startswith("_")]
    assert loaded == sorted(f"backprop.layers.{p.stem}" for p in files if p.stem[0] != "_")


def test_layers_are_named_where_users_reach_them():
    """repr, tracebacks and pickles name ``backprop.layers.Dense``, as before the split."""
    for name in L.__all__:
        assert getattr(L, name).__module__ == "backprop.layers", name
    assert repr(L.BatchNormalization) == "<class 'backprop.layers.BatchNormalization'>"
    layer = L.Dropout(0.25, name="d")
    data = pickle.dumps(layer)
    assert b"backprop.layers.regularization" not in data
    again = pickle.loads(data)
    assert type(again) is L.Dropout and again.get_config() == layer.get_config()


def _sibling_imports(path: Path) -> set[str]:
    """The modules of backprop.layers that a module imports, at its top or in a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            absolute = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if absolute == ["backprop.layers"]:  # from backprop.layers import core
                found.update(alias.name for alias in node.names)
            for name in absolute + [alias.name for alias in node.names]:
                if name.startswith("backprop.layers."):
                    found.add(name.split(".")[2])
    return found


def test_the_modules_of_the_package_import_only_downwards():
    """core imports no other layer module; the others import core (and the private helper
    modules, which import only core) and nothing beside it."""
    package = Path(L.__file__).parent
    modules = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
    helpers = {name for name in modules if name.startswith("_")}
    assert sorted(set(modules) - helpers) == sorted(LAYER_MODULES)
    assert _sibling_imports(package / "core.py") == set()
    for name in helpers:
        assert _sibling_imports(package / f"{name}.py") <= {"core"}, name
    for name in modules:
        assert _sibling_imports(package / f"{name}.py") <= {"core", *helpers}, name


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (bp.layers.Dense, "dense"),
        (bp.layers.Conv2D, "conv2d"),
        (bp.layers.MaxPooling2D, "max_pooling2d"),
        (bp.layers.GlobalAveragePooling2D, "global_average_pooling2d"),
        (bp.layers.BatchNormalization, "batch_normalization"),
    ],
)
def test_default_names_are_kerass_snake_case(cls, name):
    args = {bp.layers.Dense: (2,), bp.layers.Conv2D: (2, 3)}.get(cls, ())
    first, second = cls(*args), cls(*args)
    prefix = re.escape(name)
    assert re.fullmatch(rf"{prefix}(_\d+)?", first.name), first.name
    assert second.name != first.name and second.name.startswith(name)


# -- layer.get_weights / layer.set_weights (Keras's order, written into the model) -------------


def _weights_model(backend, trainable=True):
    model = bp.Sequential(
        [
            L.Conv2D(2, 3, activation="relu", input_shape=(5, 5, 1)),
            L.BatchNormalization(),
            L.Flatten(),
            L.Dense(3, "tanh"),
            L.Dense(1, "sigmoid"),
        ],
        backend=backend.spec,
        dtype="float64",
        seed=0,
    )
    model.layers[3].trainable = trainable
    model.compile("binary_crossentropy", "sgd")
    return model


def test_layer_get_weights_is_kerass_list_in_kerass_order(backend64):
    model = _weights_model(backend64)
    conv, bn, flatten, dense, out = model.layers
    # Conv2D [kernel, bias]; BatchNormalization [gamma, beta, moving_mean, moving_variance]
    shapes = {
        conv: [(3, 3, 1, 2), (2,)],
        bn: [(2,), (2,), (2,), (2,)],
        flatten: [],
        dense: [(18, 3), (3,)],
        out: [(3, 1), (1,)],
    }
    joined = []
    for layer in model.layers:
        weights = layer.get_weights()
        assert all(type(w) is np.ndarray for w in weights)
        assert [w.shape for w in weights] == shapes[layer]
        joined += weights
    gamma, beta, mean, var = bn.get_weights()
    np.testing.assert_array_equal(np.c_[gamma, beta, mean, var], [[1, 0, 0, 1]] * 2)
    # the model's list is the layers' lists joined
    for a, b in zip(joined, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # copies: changing one changes nothing in the model
    w = dense.get_weights()[0]
    w[...] = 7.0
    assert not np.any(dense.get_weights()[0] == 7.0)


@pytest.mark.parametrize("trainable", [True, False])
def test_layer_set_weights_writes_into_the_model(backend, trainable):
    model = bp.Sequential(
        [L.Dense(3, "tanh", input_dim=2), L.BatchNormalization(), L.Dense(1, "sigmoid")],
        backend=backend.spec,
        seed=0,
    )
    model.layers[0].trainable = trainable
    model.compile("binary_crossentropy", bp.optimizers.SGD(0.1))
    dense, bn, _ = model.layers
    X = np.array([[0.5, -1.0], [2.0, 0.25], [-1.0, 1.0]])
    theta_before = model._theta
    new = [np.arange(6.0).reshape(2, 3) / 10, np.array([0.1, -0.2, 0.3])]
    dense.set_weights(new)
    for a, b in zip(dense.get_weights(), new, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7)
    for a, b in zip(model.get_weights()[:2], new, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7)
    if backend.mutable:  # written in place: the arrays a recorded step holds stay valid
        assert model._theta is theta_before
    # the forward pass uses them: the same predictions as a model given them by its own list
    other = bp.Sequential(
        [L.Dense(3, "tanh", input_dim=2), L.BatchNormalization(), L.Dense(1, "sigmoid")],
        backend=backend.spec,
        seed=1,
    )
    other.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(X, verbose=0), other.predict(X, verbose=0), rtol=1e-6)
    # moving statistics too; and training starts from them
    stats = [np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5])]
    bn.set_weights([bn.get_weights()[0], bn.get_weights()[1], *stats])
    np.testing.assert_allclose(model.get_weights()[4:6], stats, rtol=1e-7)
    model.fit(X, np.array([0, 1, 1]), epochs=1, verbose=0)
    moved = dense.get_weights()[0]
    assert np.allclose(moved, new[0], rtol=1e-7) != trainable


def test_layer_set_weights_checks_before_changing_anything(backend):
    model = bp.Sequential([L.Dense(3, input_dim=2), L.Dense(1)], backend=backend.spec, seed=0)
    dense = model.layers[0]
    before = model.get_weights()
    W, b = dense.get_weights()
    bad = [
        ([W], r"expects a list of 2 arrays \['W', 'b'\].*received 1 arrays"),
        ([W, b, b], "received 3 arrays"),
        (W, "received ndarray"),
        ([W.T, b], r"W expects shape \(2, 3\), received \(3, 2\)"),
        ([W, np.full(3, np.nan)], "b holds NaN or infinite"),
        ([np.where(W > 0, np.inf, W), b], "W holds NaN or infinite"),
        ([W, np.array(["a", "b", "c"])], "real numbers"),
    ]
    for weights, match in bad:
        with pytest.raises(ValueError, match=match):
            dense.set_weights(weights)
        for a, c in zip(model.get_weights(), before, strict=True):
            np.testing.assert_array_equal(a, c)


def test_layer_weights_outside_a_model_and_unbuilt():
    layer = L.Dense(2)
    assert layer.get_weights() == []
    with pytest.raises(ValueError, match="not built"):
        layer.set_weights([np.zeros((3, 2)), np.zeros(2)])
    layer.set_weights([])  # nothing to set
    built = build(L.Dense(2), bp.backend.resolve("numpy"))
    W = np.ones((3, 2))
    built.set_weights([W, np.zeros(2)])
    W[...] = 5.0  # the layer keeps its own copy
    np.testing.assert_array_equal(built.get_weights()[0], np.ones((3, 2)))
    assert L.Flatten().get_weights() == [] and L.Dropout(0.5).get_weights() == []
