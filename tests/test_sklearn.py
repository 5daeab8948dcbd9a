"""backprop.sklearn: scikit-learn's estimator contract, parity with sklearn's MLP, array API.

The parity tests are the strongest evidence that the objective is scikit-learn's: with the same
``random_state`` the initial weights are the same draws, and with ``shuffle=False`` and batches
of equal size every step is the same step, so loss curves and weights agree to float64
rounding (the L2 term, the loss scaling, Adam, SGD with Nesterov momentum, the learning-rate
schedules, the stopping rule and the early-stopping split all take part).
"""

from __future__ import annotations

import importlib.util
import inspect
import pickle
import re
import warnings

import numpy as np
import pytest
import sklearn
from conftest import HAS_CUPY, HAS_TORCH
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import backprop as bp
from backprop.sklearn import MLPClassifier, MLPRegressor

HAS_STRICT = importlib.util.find_spec("array_api_strict") is not None
no_convergence_warning = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def _scipy_array_api(monkeypatch):
    # scikit-learn refuses array_api_dispatch=True unless SciPy's array API flag is set
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")


# ---------------------------------------------------------------------------------------------
# scikit-learn's own estimator checks (the array API checks for CUDA/MPS/XPU/dpnp skip
# themselves where that hardware or library is absent). One check is expected to fail in
# float32, the default dtype, and runs in float64 below.

_FLOAT32_ROUNDING = {
    "check_sample_weight_equivalence_on_dense_data": (
        "float32: the weighted fit and the fit on repeated rows sum in other orders and "
        "differ by about float32's eps (1.2e-7), at the check's rtol=1e-7; in float64 they "
        "agree (test_sample_weight_checks_in_float64)"
    )
}


@no_convergence_warning
@parametrize_with_checks(
    [
        MLPClassifier(max_iter=20, random_state=0),
        MLPRegressor(max_iter=20, random_state=0),
    ],
    expected_failed_checks=lambda est: _FLOAT32_ROUNDING,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@no_convergence_warning
@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_sample_weight_checks_in_float64(Estimator):
    from sklearn.utils import estimator_checks as checks

    est = Estimator(max_iter=20, random_state=0, dtype="float64")
    checks.check_sample_weight_equivalence_on_dense_data(Estimator.__name__, est)
    checks.check_sample_weights_not_overwritten(Estimator.__name__, est)


# ---------------------------------------------------------------------------------------------
# Parameters


def test_constructor_stores_parameters_and_defaults_match_sklearn():
    for ours, theirs in ((MLPClassifier(), SkMLPClassifier()), (MLPRegressor(), SkMLPRegressor())):
        mine, ref = ours.get_params(), theirs.get_params()
        shared = set(mine) & set(ref)
        assert set(mine) - shared == {"backend", "device", "dtype"}
        assert set(ref) <= shared  # max_fun too: stored and checked, as sklearn does for adam/sgd
        assert {k: mine[k] for k in shared} == {k: ref[k] for k in shared}
        assert (mine["backend"], mine["device"], mine["dtype"]) == (None, None, "float32")
    sizes = [3, 2]  # stored as given, not converted
    assert MLPClassifier(hidden_layer_sizes=sizes).hidden_layer_sizes is sizes
    est = MLPClassifier(alpha=0.5, backend="numpy")
    assert clone(est).get_params() == est.get_params()


_EXTRAS = ["backend", "device", "dtype"]  # backprop's own parameters, after scikit-learn's


@pytest.mark.skipif(
    tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 9),
    reason="the parameters follow scikit-learn 1.9's signature",
)
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(MLPClassifier, SkMLPClassifier), (MLPRegressor, SkMLPRegressor)],
    ids=["classifier", "regressor"],
)
def test_signature_is_sklearns_then_backprops_extras(ours, theirs):
    mine = list(inspect.signature(ours).parameters.values())
    ref = list(inspect.signature(theirs).parameters.values())
    # the same names in the same order, positional where sklearn's are, with the same defaults
    # (MLPRegressor's loss comes first, before hidden_layer_sizes, as in scikit-learn >= 1.7)
    head = [(p.name, p.kind, p.default) for p in mine[: len(ref)]]
    assert head == [(p.name, p.kind, p.default) for p in ref]
    extras = mine[len(ref) :]
    assert [p.name for p in extras] == _EXTRAS
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extras)
    # get_params lists them all, clone and set_params keep every one
    est = ours(**{p.name: p.default for p in mine}).set_params(max_fun=7, dtype="float64")
    assert list(est.get_params()) == sorted(p.name for p in mine)
    assert clone(est).get_params() == est.get_params()
    assert (est.max_fun, est.dtype) == (7, "float64")


def test_regressor_positional_parameters_are_sklearns():
    # scikit-learn's MLPRegressor("squared_error", (8,), "tanh"): loss, then the layer sizes
    reg = MLPRegressor("squared_error", (8,), "tanh", max_iter=3, random_state=0)
    ref = SkMLPRegressor("squared_error", (8,), "tanh", max_iter=3, random_state=0)
    for name in ("loss", "hidden_layer_sizes", "activation"):
        assert getattr(reg, name) == getattr(ref, name)
    X, y = make_regression(30, 3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        assert reg.fit(X, y).coefs_[0].shape == (3, 8)
    # the layer sizes given where scikit-learn 1.9 expects the loss: the error says so
    with pytest.raises(ValueError, match=r"loss.*first.*hidden_layer_sizes=\(8,\)"):
        MLPRegressor((8,)).fit(X, y)
    with pytest.raises(TypeError, match="positional"):
        MLPRegressor("squared_error", (8,), "tanh", "adam")


def test_max_fun_is_stored_and_checked_like_sklearns():
    X, y = make_classification(20, 3, n_informative=2, n_redundant=0, random_state=0)
    with pytest.raises(ValueError, match="max_fun must be in"):
        MLPClassifier(max_fun=0).fit(X, y)
    with pytest.raises(TypeError, match="max_fun must be an integer"):
        MLPRegressor(max_fun=1.5).fit(X, y.astype(float))


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"solver": "lbfgs"}, ValueError, "lbfgs.*not supported"),
        ({"solver": "newton"}, ValueError, "solver must be one of"),
        ({"activation": "softmax"}, ValueError, "activation must be one of"),
        ({"hidden_layer_sizes": (10, 0)}, ValueError, "hidden_layer_sizes"),
        ({"alpha": -1.0}, ValueError, "alpha must be in"),
        ({"batch_size": 0}, ValueError, "batch_size must be in"),
        ({"learning_rate_init": 0.0}, ValueError, "learning_rate_init must be in"),
        ({"max_iter": 2.5}, TypeError, "max_iter must be an integer"),
        ({"momentum": 1.0}, ValueError, "momentum must be in"),
        ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
        ({"dtype": "float16"}, ValueError, "dtype must be one of"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ],
)
def test_bad_parameters_raise_at_fit(params, error, match):
    X, y = make_classification(20, 3, n_informative=2, n_redundant=0, random_state=0)
    est = MLPClassifier(**params)  # __init__ only stores
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "coefs_")


# ---------------------------------------------------------------------------------------------
# Parity with sklearn.neural_network: same seed, same steps, same numbers

_PARITY = {
    "hidden_layer_sizes": (7, 5),
    "max_iter": 15,
    "shuffle": False,
    "random_state": 3,
    "alpha": 0.01,
    "batch_size": 40,
}


def _assert_same_fit(ours, theirs, X, y, *, compare_loss=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    if compare_loss:
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
        assert (ours.best_loss_ is None) == (theirs.best_loss_ is None)
    if theirs.validation_scores_ is not None:  # early stopping: the same split, the same scores
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
        assert ours.best_validation_score_ == max(ours.validation_scores_)
    assert len(ours.coefs_) == len(theirs.coefs_)
    for a, b in zip(
        ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("multiclass", {}),
        ("binary", {"activation": "logistic"}),
        ("multilabel", {"activation": "tanh"}),
        ("multiclass", {"solver": "sgd", "learning_rate": "invscaling"}),
        ("binary", {"solver": "sgd", "nesterovs_momentum": False, "activation": "identity"}),
        # adaptive: the rate is divided by 5 five times (1e-3 -> 3.2e-7 < 1e-6), then it stops
        ("multiclass", {"solver": "sgd", "learning_rate": "adaptive", "tol": 0.1,
                        "n_iter_no_change": 2, "max_iter": 60}),
        ("multiclass", {"tol": 10.0, "n_iter_no_change": 3}),  # stops after 5 epochs
        ("binary", {"early_stopping": True, "batch_size": 36}),  # stratified split
        ("multiclass", {"early_stopping": True, "batch_size": 36, "n_iter_no_change": 2}),
    ],
)  # fmt: skip
def test_classifier_matches_sklearn_step_for_step(kind, extra):
    X, y = make_classification(120, 6, n_informative=4, n_classes=3, random_state=0)
    if kind == "binary":
        y = y % 2
    elif kind == "multilabel":
        y = np.c_[y == 0, y == 1, y != 1].astype(int)
    params = {**_PARITY, **extra}
    ours, theirs = MLPClassifier(dtype="float64", **params), SkMLPClassifier(**params)
    _assert_same_fit(ours, theirs, X, y)
    if extra.get("tol") == 10.0:
        assert ours.n_iter_ == 5  # nothing improves by 10: n_iter_no_change + 2 epochs
    if extra.get("solver") == "sgd":  # the schedules leave the same rate behind
        assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate)
    if extra.get("learning_rate") == "adaptive":
        assert ours._optimizer.learning_rate == pytest.approx(1e-3 / 5**5)


@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_regressor_matches_sklearn_step_for_step(n_targets, early_stopping):
    X, y = make_regression(120, 6, n_targets=n_targets, noise=1.0, random_state=0)
    y = y / y.std()
    # equal batches (sklearn scales the L2 term by each batch's size): 120 = 3 x 40, 108 = 3 x 36
    params = {
        **_PARITY,
        "early_stopping": early_stopping,
        "batch_size": 36 if early_stopping else 40,
    }
    # with several targets sklearn reports the loss divided by n_targets, but steps with the
    # gradient of the undivided one (which backprop reports): compare the weights only
    _assert_same_fit(
        MLPRegressor(dtype="float64", **params),
        SkMLPRegressor(**params),
        X,
        y,
        compare_loss=n_targets == 1,
    )


def test_float32_default_stays_close_to_sklearn():
    X, y = make_classification(120, 6, n_informative=4, n_classes=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**_PARITY).fit(X, y)
        theirs = SkMLPClassifier(**_PARITY).fit(X, y)
    assert ours.coefs_[0].dtype == np.float32
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Behaviour


def _blobs(n=90, classes=3, seed=0):
    X, y = make_classification(
        n, 4, n_informative=3, n_redundant=0, n_classes=classes, class_sep=2.0, random_state=seed
    )
    return X, y


def test_string_labels_and_probabilities():
    X, y = _blobs()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = MLPClassifier((16,), learning_rate_init=0.05, max_iter=60, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, names)
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    pred = clf.predict(X)
    assert pred.dtype == names.dtype and set(pred) <= set(names)
    proba = clf.predict_proba(X)
    assert proba.shape == (90, 3) and proba.dtype == np.float64  # X's dtype, as sklearn
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (clf.classes_[proba.argmax(axis=1)] == pred).all()
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-6)
    assert clf.score(X, names) > 0.9


def test_binary_labels_of_any_kind():
    X, y = _blobs(classes=2)
    for labels in (np.array([-3, 7])[y], np.array([False, True])[y], np.array(["no", "yes"])[y]):
        clf = MLPClassifier((8,), learning_rate_init=0.05, max_iter=80, tol=1e-3, random_state=0)
        clf.fit(X, labels)
        assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
        assert clf.classes_.tolist() == sorted(set(labels.tolist()))
        proba = clf.predict_proba(X)
        assert proba.shape == (90, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
        assert (clf.predict(X) == clf.classes_[(proba[:, 1] > 0.5).astype(int)]).all()
        assert clf.score(X, labels) > 0.9


def test_label_mismatches_are_refused():
    X, y = _blobs()
    clf = MLPClassifier((4,), max_iter=2, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="warm_start can only be used"):
        clf.fit(X[y < 2], y[y < 2])
    with pytest.raises(ValueError, match="differs from classes_"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="fitted on a vector of labels"):
        clf.partial_fit(X, np.c_[y == 0, y == 1].astype(int))
    with pytest.raises(ValueError, match="multiclass-multioutput"):
        MLPClassifier().fit(X, np.c_[y, y])
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="loss must be 'squared_error'"):
        MLPRegressor(loss="poisson").fit(X, X[:, 0])


def test_one_class_is_refused():
    X = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        MLPClassifier().fit(X, ["a"] * 10)


def test_multilabel_indicator():
    X, y = _blobs(classes=3)
    Y = np.c_[y == 0, y != 0, y == 2].astype(int)
    clf = MLPClassifier((16,), learning_rate_init=0.05, max_iter=100, tol=1e-3, random_state=0)
    clf.fit(X, Y)
    assert clf.classes_.tolist() == [0, 1, 2] and clf.n_outputs_ == 3
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and (proba >= 0).all() and (proba <= 1).all()
    assert (pred == (proba > 0.5)).all()
    assert clf.score(X, Y) > 0.8  # subset accuracy


def test_multi_output_regression():
    X, Y = make_regression(150, 5, n_targets=3, noise=0.1, random_state=0)
    Y = Y / Y.std(axis=0)
    reg = MLPRegressor(
        hidden_layer_sizes=(32,), learning_rate_init=0.01, max_iter=200, tol=1e-4, random_state=0
    )
    reg.fit(X, Y)
    assert reg.n_outputs_ == 3 and reg.coefs_[-1].shape == (32, 3)
    assert reg.predict(X).shape == (150, 3)
    assert reg.score(X, Y) > 0.95
    assert reg.n_iter_ < 200  # converged by sklearn's rule


def test_partial_fit_classifier():
    X, y = _blobs()
    clf = MLPClassifier((16,), learning_rate_init=0.02, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:30], y[:30], classes=[0, 1, 2])
    losses = []
    for _ in range(30):
        clf.partial_fit(X, y)
        losses.append(clf.loss_)
        assert clf.n_iter_ == 1
    assert clf.t_ == 30 + 30 * 90
    assert clf.loss_curve_[1:] == losses
    assert losses[-1] < 0.5 * losses[0]
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:2], [0, 5])
    with pytest.raises(ValueError, match="early_stopping"):
        clone(clf).set_params(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_partial_fit_regressor_continues_the_optimizer():
    X, y = make_regression(100, 4, noise=0.1, random_state=0)
    y = y / y.std()
    full = MLPRegressor(
        hidden_layer_sizes=(8,), shuffle=False, batch_size=50, max_iter=6, tol=0, random_state=0
    )
    with pytest.warns(ConvergenceWarning):
        full.fit(X, y)
    steps = MLPRegressor(hidden_layer_sizes=(8,), shuffle=False, batch_size=50, random_state=0)
    for _ in range(6):
        steps.partial_fit(X, y)
    # six one-epoch calls with Adam's state carried over are the six epochs of one fit
    np.testing.assert_allclose(steps.loss_curve_, full.loss_curve_, rtol=1e-6)
    for a, b in zip(steps.coefs_, full.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_warm_start_continues_from_the_weights():
    X, y = _blobs()
    clf = MLPClassifier((16,), warm_start=True, max_iter=5, random_state=0)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    first = [W.copy() for W in clf.coefs_]
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    assert len(clf.loss_curve_) == 10 and clf.n_iter_ == 5
    assert clf.loss_curve_[5] < clf.loss_curve_[0]
    assert any(not np.array_equal(a, b) for a, b in zip(first, clf.coefs_, strict=True))
    cold = clone(clf).set_params(warm_start=False)
    with pytest.warns(ConvergenceWarning):
        cold.fit(X, y)
    np.testing.assert_allclose(cold.loss_curve_, clf.loss_curve_[:5], rtol=1e-6)


def test_convergence_warning_and_verbose(capsys):
    X, y = _blobs()
    clf = MLPClassifier((8,), max_iter=3, verbose=True, random_state=0)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        clf.fit(X, y)
    out = capsys.readouterr().out
    assert out.count("Iteration ") == 3 and f"loss = {clf.loss_curve_[-1]:.8f}" in out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.set_params(verbose=False, tol=100.0, max_iter=50).fit(X, y)  # converges: silent
    assert clf.n_iter_ == 12  # n_iter_no_change=10: the 12th epoch is the 11th without gain


SKLEARN_DIVERGED = (
    "Solver produced non-finite parameter weights. The input data may contain large values "
    "and need to be preprocessed."
)


@no_convergence_warning  # scikit-learn's MLP warns before it raises
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's overflow warnings on the way
def test_diverging_training_raises_sklearns_value_error():
    X, y = make_regression(100, 5, random_state=0)
    params = dict(solver="sgd", learning_rate_init=10.0, max_iter=50, random_state=0)
    with pytest.raises(ValueError, match=re.escape(SKLEARN_DIVERGED)):
        SkMLPRegressor(**params).fit(X, y)  # what scikit-learn does with this learning rate
    reg = MLPRegressor(**params)
    with pytest.raises(ValueError) as info:
        reg.fit(X, y)
    message = str(info.value)
    assert message.startswith(SKLEARN_DIVERGED)
    # the advice is in the estimator's own parameters, not in fit's (optimizer=, callbacks=)
    assert "learning_rate_init=10.0" in message and "StandardScaler" in message
    assert "clipnorm" not in message and "TerminateOnNaN" not in message
    assert isinstance(info.value.__cause__, bp.model.NonFiniteLossError)
    # the weights of the last finite epoch are kept, in step with n_iter_ and loss_curve_
    assert f"in epoch {reg.n_iter_ + 1} of at most max_iter=50" in message
    assert reg.n_iter_ == len(reg.loss_curve_) and np.isfinite(reg.loss_curve_).all()
    assert all(np.isfinite(a).all() for a in [*reg.coefs_, *reg.intercepts_])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_classifier_and_partial_fit_raise_value_error():
    X, y = make_classification(100, 5, random_state=0)
    clf = MLPClassifier((8,), "identity", solver="sgd", learning_rate_init=1e6, random_state=0)
    with pytest.raises(ValueError, match=re.escape(SKLEARN_DIVERGED)) as info:
        clf.fit(X * 1e3, y)
    assert isinstance(info.value.__cause__, bp.model.NonFiniteLossError)
    reg = MLPRegressor(
        hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=10.0, random_state=0
    )
    Xr, yr = make_regression(100, 5, random_state=0)
    with pytest.raises(ValueError, match=re.escape(SKLEARN_DIVERGED)) as info:
        for _ in range(20):
            reg.partial_fit(Xr, yr)
    assert "learning_rate_init=10.0" in str(info.value)
    assert isinstance(info.value.__cause__, bp.model.NonFiniteLossError)


def test_pickle_round_trip():
    X, y = _blobs()
    clf = MLPClassifier((8,), max_iter=40, tol=1e-2, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


# ---------------------------------------------------------------------------------------------
# scikit-learn's tools


@no_convergence_warning
def test_pipeline_grid_search_cross_val_score_clone():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", MLPClassifier(learning_rate_init=0.02, max_iter=40, random_state=0)),
        ]
    )
    grid = GridSearchCV(
        pipe, {"mlp__hidden_layer_sizes": [(4,), (16,)], "mlp__alpha": [1e-4, 1e-2]}, cv=3
    )
    grid.fit(X, y)
    best = grid.best_params_["mlp__hidden_layer_sizes"]
    assert best in [(4,), (16,)] and grid.best_score_ > 0.8
    assert grid.best_estimator_.named_steps["mlp"].coefs_[0].shape == (4, best[0])
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    fresh = clone(grid.best_estimator_)
    assert not hasattr(fresh.named_steps["mlp"], "coefs_")
    assert fresh.get_params()["mlp__alpha"] == grid.best_params_["mlp__alpha"]


@no_convergence_warning
def test_regressor_in_cross_val_score():
    X, y = make_regression(120, 4, noise=0.1, random_state=0)
    pipe = Pipeline(
        [
            ("s", StandardScaler()),
            (
                "m",
                MLPRegressor(
                    hidden_layer_sizes=(16,), learning_rate_init=0.02, max_iter=60, random_state=0
                ),
            ),
        ]
    )
    assert cross_val_score(pipe, X, y / y.std(), cv=3).mean() > 0.8


# ---------------------------------------------------------------------------------------------
# Accuracy on digits, against scikit-learn's MLPClassifier with the same hyper-parameters


def test_digits_accuracy_matches_sklearn():
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    params = {
        "hidden_layer_sizes": (64,),
        "learning_rate_init": 0.01,
        "batch_size": 64,
        "max_iter": 30,
        "random_state": 0,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**params).fit(Xtr, ytr).score(Xte, yte)
        theirs = SkMLPClassifier(**params).fit(Xtr, ytr).score(Xte, yte)
    assert ours >= 0.95
    assert abs(ours - theirs) <= 0.02


# ---------------------------------------------------------------------------------------------
# Backends and scikit-learn's array API dispatch


def _xy(n=60):
    X, y = _blobs(n)
    return X.astype(np.float32), y


def _place(a):
    return bp.backend.array_backend_name(a), str(bp.backend.device_of(a))


@no_convergence_warning
def test_backend_parameter_trains_there_and_returns_numpy():
    X, y = _xy()
    params = {"hidden_layer_sizes": (8,), "max_iter": 5, "random_state": 0, "dtype": "float64"}
    ref = MLPClassifier(**params).fit(X, y)
    for spec in ("array_api_strict", "array_api_strict:device1") if HAS_STRICT else ():
        est = MLPClassifier(backend=spec, **params).fit(X, y)
        assert isinstance(est.coefs_[0], np.ndarray)  # no dispatch: NumPy out
        proba = est.predict_proba(X)
        assert isinstance(proba, np.ndarray)
        np.testing.assert_allclose(proba, ref.predict_proba(X), rtol=1e-10)
        np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-10)


@pytest.mark.skipif(not HAS_STRICT, reason="array_api_strict is not installed")
def test_use_backend_picks_the_training_backend():
    X, y = _xy()
    device1 = bp.backend.resolve("array_api_strict", "device1")
    est = MLPClassifier((4,), max_iter=2, random_state=0)
    with bp.use_backend("array_api_strict", "device1"), pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    # Adam's moments live where the network trained; the fitted attributes are NumPy's
    state = [v for s in est._optimizer.state for v in s.values()]
    assert state and all(device1.owns(v) for v in state)
    assert isinstance(est.coefs_[0], np.ndarray) and isinstance(est.predict(X), np.ndarray)


def _dispatch_cases():
    cases = [pytest.param("numpy", None, id="numpy")]
    if HAS_STRICT:
        cases.append(pytest.param("array_api_strict", "device1", id="array_api_strict:device1"))
    if HAS_TORCH:
        cases.append(pytest.param("torch", "cpu", id="torch"))
    cases.append(
        pytest.param(
            "cupy",
            None,
            id="cupy",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not HAS_CUPY, reason="needs CuPy and a CUDA GPU"),
            ],
        )
    )
    return cases


@no_convergence_warning
@pytest.mark.parametrize(("library", "device"), _dispatch_cases())
@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_array_api_dispatch_same_library_and_device_out(Estimator, library, device):
    backend = bp.backend.resolve(library, device)
    X, y = _xy()
    if Estimator is MLPRegressor:
        y = np.c_[X[:, 0] - X[:, 1], X[:, 2]]
    Xd, yd = backend.asarray(X), backend.asarray(y)
    est = Estimator(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    with sklearn.config_context(array_api_dispatch=True):
        est.fit(Xd, yd)
        pred = est.predict(Xd)
        outs = [pred, *est.coefs_, *est.intercepts_]
        if Estimator is MLPClassifier:
            outs += [est.predict_proba(Xd), est.predict_log_proba(Xd), est.classes_]
        score = est.score(Xd, yd)
    for out in outs:
        assert backend.owns(out), f"{type(out)} is not on {backend}"
    assert isinstance(score, float)
    assert tuple(pred.shape) == tuple(y.shape)
    # the same numbers as a NumPy fit (same seed, same float32 steps)
    with sklearn.config_context(array_api_dispatch=True):
        ref = clone(est).fit(X, y)
    assert isinstance(ref.predict(X), np.ndarray) and isinstance(ref.coefs_[0], np.ndarray)
    np.testing.assert_allclose(bp.to_numpy(est.coefs_[0]), ref.coefs_[0], rtol=1e-4, atol=1e-5)
    if Estimator is MLPClassifier:
        np.testing.assert_array_equal(bp.to_numpy(pred), ref.predict(X))


@pytest.mark.skipif(not HAS_STRICT, reason="array_api_strict is not installed")
@no_convergence_warning
def test_array_api_dispatch_strict_details():
    backend = bp.backend.resolve("array_api_strict", "device1")
    X, y = _xy()
    labels = np.array(["a", "b", "c"])[y]
    est = MLPClassifier((8,), max_iter=5, random_state=0)
    with sklearn.config_context(array_api_dispatch=True):
        # string labels stay on the host; everything numeric follows X
        est.fit(backend.asarray(X), labels)
        assert isinstance(est.classes_, np.ndarray) and backend.owns(est.coefs_[0])
        assert set(est.predict(backend.asarray(X))) <= {"a", "b", "c"}
        assert backend.owns(est.predict_proba(backend.asarray(X)))
        # y of another library moves to X's
        est.fit(backend.asarray(X), y)
        assert backend.owns(est.classes_)
        # predicting on another library than the fit's is an error, as scikit-learn's
        with pytest.raises(ValueError, match=r"MLPClassifier.predict\(\) must use the same"):
            est.predict(X)
    # without dispatch, NumPy in gives NumPy out whatever the fit was
    assert isinstance(est.predict_proba(X), np.ndarray)
    assert isinstance(est.predict(X), np.ndarray)


# ---------------------------------------------------------------------------------------------
# sample_weight, as scikit-learn's MLP weighs it (>= 1.7): each batch's objective is
# (sum_i w_i L_i + alpha/2 ||W||^2) / sum_i w_i


def _weights(n, seed=0, zeros=True):
    w = np.random.default_rng(seed).integers(0, 4, n).astype(np.float64)
    if not zeros:
        w += 0.5
    return w


def _fit_both(ours, theirs, X, y, w):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y, sample_weight=w)
        theirs.fit(X, y, sample_weight=w)
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(
        ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("multiclass", {}),
        ("binary", {"activation": "logistic", "solver": "sgd"}),
        ("multilabel", {"activation": "tanh"}),
        ("multiclass", {"early_stopping": True, "batch_size": 108, "n_iter_no_change": 2}),
    ],
)
def test_weighted_classifier_matches_sklearn_full_batch(kind, extra):
    X, y = make_classification(120, 6, n_informative=4, n_classes=3, random_state=0)
    if kind == "binary":
        y = y % 2
    elif kind == "multilabel":
        y = np.c_[y == 0, y == 1, y != 1].astype(int)
    # one batch: scikit-learn divides each batch's objective by that batch's total weight
    params = {**_PARITY, "batch_size": 120, **extra}
    ours, theirs = MLPClassifier(dtype="float64", **params), SkMLPClassifier(**params)
    _fit_both(ours, theirs, X, y, _weights(120))
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    if extra.get("early_stopping"):  # the weighted validation accuracy
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_weighted_regressor_matches_sklearn_full_batch(early_stopping):
    X, y = make_regression(120, 6, noise=1.0, random_state=0)
    y = y / y.std()
    params = {**_PARITY, "early_stopping": early_stopping,
              "batch_size": 108 if early_stopping else 120}  # fmt: skip
    ours, theirs = MLPRegressor(dtype="float64", **params), SkMLPRegressor(**params)
    _fit_both(ours, theirs, X, y, _weights(120, zeros=False))
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    if early_stopping:  # the weighted R^2
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_all_ones_weights_fit_as_no_weights(Estimator):
    X, y = make_classification(60, 4, random_state=1)
    params = dict(hidden_layer_sizes=(5,), max_iter=5, batch_size=16, random_state=0)
    kw = {"classes": [0, 1]} if Estimator is MLPClassifier else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pairs = [
            (
                Estimator(**params).fit(X, y),
                Estimator(**params).fit(X, y, sample_weight=np.ones(60)),
            ),
            (
                Estimator(**params).partial_fit(X, y, **kw),
                Estimator(**params).partial_fit(X, y, sample_weight=np.ones(60), **kw),
            ),
        ]
    for a, b in pairs:
        assert a.loss_curve_ == b.loss_curve_
        for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_integer_weights_fit_as_repeated_rows_in_one_batch(Estimator):
    X, y = make_classification(40, 4, random_state=2)
    w = _weights(40, seed=1)  # zeros too: those rows are as if removed
    params = dict(hidden_layer_sizes=(5,), max_iter=6, shuffle=False, random_state=0,
                  alpha=0.1, dtype="float64", solver="sgd", learning_rate_init=0.1)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = Estimator(**params).fit(X, y, sample_weight=w)  # batch_size="auto": one batch
        reps = w.astype(int)
        b = Estimator(**params).fit(np.repeat(X, reps, axis=0), np.repeat(y, reps))
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-13)


def test_weights_of_partial_fit_and_score():
    X, y = _blobs()
    w = _weights(len(y), zeros=False)
    clf = MLPClassifier((6,), random_state=0, learning_rate_init=0.05)
    clf.partial_fit(X, y, classes=np.unique(y), sample_weight=w)
    clf.partial_fit(X, y, sample_weight=w)
    ref = MLPClassifier((6,), random_state=0, learning_rate_init=0.05)
    ref.partial_fit(X, y, classes=np.unique(y))
    ref.partial_fit(X, y)
    assert not np.array_equal(clf.coefs_[0], ref.coefs_[0])  # the weights mattered
    assert clf.score(X, y, sample_weight=w) == pytest.approx(
        np.average(clf.predict(X) == y, weights=w)
    )


@pytest.mark.parametrize(
    ("w", "error", "match"),
    [
        (np.ones(59), ValueError, r"sample_weight.*\(60,\).*\(59,\)"),
        (np.ones((60, 2)), ValueError, "1-D"),
        (-np.ones(60), ValueError, ">= 0"),
        (np.r_[np.ones(59), np.nan], ValueError, "finite"),
        (np.zeros(60), ValueError, "all zero"),
        (np.array(["a"] * 60), (TypeError, ValueError), "sample_weight"),
    ],
)
def test_bad_sample_weights_get_a_clear_error(w, error, match):
    X, y = _xy()
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with pytest.raises(error, match=match):
        est.fit(X, y, sample_weight=w)
    assert not hasattr(est, "coefs_")
