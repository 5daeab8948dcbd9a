import contextlib
import ctypes
import importlib
import types

import numpy as np
import pytest
from conftest import HAS_CUPY, HAS_JAX, HAS_TORCH

import backprop as bp
from backprop import backend as B


def test_default_is_numpy(monkeypatch):
    monkeypatch.delenv(B.ENV_VAR, raising=False)
    assert bp.get_backend().name == "numpy"


def test_precedence_explicit_context_global_env_default(monkeypatch):
    monkeypatch.setattr(B, "_global", None)
    monkeypatch.setenv(B.ENV_VAR, "array_api_strict:device1")
    env = bp.get_backend()
    assert (env.name, env.device) == ("array_api_strict", B.resolve("strict:device1").device)

    bp.set_backend("array_api_strict")  # beats the environment
    assert bp.get_backend().device == B.resolve("array_api_strict").device
    with bp.use_backend("numpy"):  # beats set_backend
        assert bp.get_backend().name == "numpy"
        # an explicit argument beats the context
        model = bp.Sequential([bp.layers.Dense(1, input_dim=2)], backend="array_api_strict")
        assert model.backend.name == "array_api_strict"
        assert bp.Sequential([bp.layers.Dense(1, input_dim=2)]).backend.name == "numpy"
    assert bp.get_backend().name == "array_api_strict"
    monkeypatch.setattr(B, "_global", None)
    assert bp.get_backend().device == env.device


def test_use_backend_restores_on_error():
    before = bp.get_backend()
    with pytest.raises(RuntimeError), bp.use_backend("array_api_strict", "device1"):
        raise RuntimeError("inside")
    assert bp.get_backend() == before


def test_env_var_with_device(monkeypatch):
    monkeypatch.setattr(B, "_global", None)
    monkeypatch.setenv(B.ENV_VAR, "array_api_strict:no_float64")
    b = bp.get_backend()
    assert not b.supports_float64
    with pytest.raises(bp.BackendError, match="float64"):
        b.dtype("float64")


def test_unknown_backend_lists_valid_names():
    with pytest.raises(bp.BackendError, match=r"Unknown backend 'tensorflow'.*numpy.*cupy"):
        B.resolve("tensorflow")
    with pytest.raises(TypeError, match="backend must be a string"):
        B.resolve(3)


def test_unknown_device():
    with pytest.raises(bp.BackendError, match="numpy backend has only the device 'cpu'"):
        B.resolve("numpy", "cuda:0")
    with pytest.raises(bp.BackendError, match=r"no device 'device9'.*device1"):
        B.resolve("array_api_strict", "device9")


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_torch_devices():
    assert B.resolve("torch").device.type == "cpu"
    assert B.resolve("torch:cpu").name == "torch"
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(bp.BackendError, match="no CUDA GPU"):
            B.resolve("torch", "cuda:0")
    with pytest.raises(bp.BackendError, match="Invalid torch device"):
        B.resolve("torch", "banana")


@pytest.mark.skipif(not HAS_JAX, reason="jax not installed")
@pytest.mark.parametrize("device", ["cpu:abc", "cpu:-1", "cpu:0:1", "-1", -1, True])
def test_jax_refuses_a_device_index_that_is_not_one(device):
    """As the cupy and torch backends do: no raw int() error, no negative index from the end."""
    with pytest.raises(bp.BackendError) as info:
        B.resolve("jax", device)
    message = str(info.value)
    assert repr(device) in message  # the device string received
    assert "'platform:N'" in message  # what is expected
    assert "'cpu:0'" in message  # the devices there are


@pytest.mark.skipif(not HAS_JAX, reason="jax not installed")
def test_jax_device_spellings_that_stay_valid():
    first = B.resolve("jax").device
    for device in (None, "cpu", "CPU:0", "cpu:", "0", 0, first):
        assert B.resolve("jax", device).device == first, device
    with pytest.raises(bp.BackendError, match=r"'cpu:9' does not exist.*'cpu:0'"):
        B.resolve("jax", "cpu:9")


def test_missing_library_names_the_install(monkeypatch):
    real = B.importlib.util.find_spec
    monkeypatch.setattr(
        B.importlib.util, "find_spec", lambda name: None if name == "cupy" else real(name)
    )
    with pytest.raises(bp.BackendNotInstalledError, match=r"cupy.*backprop\[cuda12\]"):
        B.resolve("cupy")
    assert "cupy" not in bp.available_backends()


@pytest.mark.skipif(HAS_CUPY, reason="a GPU answers here")
def test_cupy_without_gpu_is_a_clear_error():
    if B.importlib.util.find_spec("cupy") is None:
        pytest.skip("cupy not installed")
    with pytest.raises(bp.BackendError, match="GPU"):
        B.resolve("cupy")


def test_available_backends():
    names = bp.available_backends()
    assert names[0] == "numpy"
    assert "array_api_strict" in names
    assert ("torch" in names) == HAS_TORCH
    assert ("cupy" in names) == HAS_CUPY


def test_host_device_roundtrip(backend):
    host = np.arange(6.0).reshape(2, 3)
    a = backend.asarray(host, "float32")
    assert backend.owns(a)
    assert a.dtype == backend.xp.float32
    assert B.device_of(a) == backend.device or str(B.device_of(a)) == str(backend.device)
    back = bp.to_numpy(a)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host.astype(np.float32))
    assert B.backend_of(a).name == backend.name


def test_asarray_between_libraries(backend):
    strict = B.resolve("array_api_strict", "device1")
    a = strict.asarray(np.ones((2, 2)), "float32")
    b = backend.asarray(a, "float32")  # through the host, onto the target device
    assert backend.owns(b)
    np.testing.assert_array_equal(bp.to_numpy(b), np.ones((2, 2), np.float32))


def test_to_numpy_of_host_data():
    np.testing.assert_array_equal(bp.to_numpy([[1, 2]]), np.array([[1, 2]]))


def test_spec_roundtrip():
    for spec in ("numpy", "array_api_strict", "array_api_strict:device1"):
        assert B.resolve(spec).spec == spec
        assert B.resolve(B.resolve(spec).spec) == B.resolve(spec)


def test_dtype_names():
    b = B.resolve("numpy")
    assert b.dtype("float32") == np.float32
    with pytest.raises(ValueError, match="float32' or 'float64"):
        b.dtype("int8")


# -- CuPy's error paths, with the library faked (they must be right on machines without a GPU) --


def _fake_cupy(monkeypatch, count):
    import sys
    import types

    def get_count():
        if isinstance(count, Exception):
            raise count
        return count

    class Device:
        def __init__(self, index=0):
            self.id = index

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=get_count), Device=Device
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    real = B.importlib.util.find_spec
    monkeypatch.setattr(
        B.importlib.util, "find_spec", lambda name: object() if name == "cupy" else real(name)
    )


def test_fake_cupy_without_driver(monkeypatch):
    _fake_cupy(monkeypatch, RuntimeError("cudaErrorNoDevice: no CUDA-capable device"))
    with pytest.raises(bp.BackendError, match=r"no usable CUDA GPU answers.*nvidia-smi"):
        B.resolve("cupy")
    assert "cupy" not in bp.available_backends()


def test_fake_cupy_with_no_visible_gpu(monkeypatch):
    _fake_cupy(monkeypatch, 0)
    with pytest.raises(bp.BackendError, match="no CUDA GPU is visible"):
        B.resolve("cupy")


@pytest.mark.parametrize("device", ["cuda:3", 1, "gpu:2"])
def test_fake_cupy_device_out_of_range(monkeypatch, device):
    _fake_cupy(monkeypatch, 1)
    with pytest.raises(bp.BackendError, match=r"does not exist: 1 CUDA device\(s\).*0\.\.0"):
        B.resolve("cupy", device)


def test_fake_cupy_bad_device_spelling(monkeypatch):
    _fake_cupy(monkeypatch, 2)
    with pytest.raises(bp.BackendError, match="not valid for the cupy backend"):
        B.resolve("cupy", "banana")


def test_describe_cpu_devices():
    assert B.resolve("numpy").describe() == "cpu"
    assert B.resolve("array_api_strict", "device1").describe() == "device1"


def test_set_backend_none_restores_the_environment(monkeypatch):
    monkeypatch.setattr(B, "_global", None)
    monkeypatch.setenv(B.ENV_VAR, "array_api_strict")
    bp.set_backend("numpy")
    assert bp.get_backend().name == "numpy"
    assert bp.set_backend(None).name == "array_api_strict"


def test_to_numpy_gives_writable_arrays(backend):
    """JAX hands out read-only views of its buffers; users get arrays they can write to."""
    a = backend.asarray(np.arange(6.0).reshape(2, 3), "float32")
    host = bp.to_numpy(a)
    assert isinstance(host, np.ndarray) and host.flags.writeable
    if backend.name != "numpy":  # NumPy input comes back as it is, without a copy
        host[0, 0] = 7.0  # a copy of its own: writing to it leaves the backend's array alone
        assert float(bp.to_numpy(a)[0, 0]) == 0.0
    moved = B.resolve("numpy").asarray(a, "float64")
    assert moved.flags.writeable


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_torch_maximum_and_minimum_of_a_python_number_make_no_tensor():
    """``torch.clamp`` instead of array-api-compat's copy of the number (refused in a graph)."""
    import array_api_compat.torch as compat
    import torch
    from torch.overrides import TorchFunctionMode

    made = []

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in ("asarray", "tensor", "as_tensor"):
                made.append(func.__name__)
            return func(*args, **(kwargs or {}))

    xp = B.resolve("torch").xp
    for dtype in (torch.float32, torch.float64):
        z = torch.tensor([-2.0, -0.0, float("nan"), 3.0, float("inf")], dtype=dtype)
        for f in ("maximum", "minimum"):
            for args in [(z, 0.0), (0.5, z), (z, 2)]:
                expected = getattr(compat, f)(*args)
                with Watch():
                    got = getattr(xp, f)(*args)
                assert got.dtype == expected.dtype
                torch.testing.assert_close(got, expected, equal_nan=True)
    assert made == []
    ints = torch.tensor([1, 5])
    assert xp.maximum(ints, 3).tolist() == [3, 5]  # other cases: array-api-compat's own


class _DevArray(np.ndarray):
    """A NumPy array that shows its address as CuPy does (``x.data.ptr``)."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _column_major(ptr, rows, cols, ld, dtype):
    """The column-major matrix (rows x cols, leading dimension ld) at address ptr."""
    item = np.dtype(dtype).itemsize
    size = ld * (cols - 1) + rows
    buf = np.ctypeslib.as_array((ctypes.c_char * (size * item)).from_address(ptr))
    flat = np.frombuffer(buf, dtype=dtype)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (item, ld * item))


def _fake_gemm(dtype):
    """cuBLAS's gemm (column-major), in NumPy, on raw addresses: what the binding calls."""

    def gemm(handle, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        A = _column_major(a, *((m, k) if transa == 0 else (k, m)), lda, dtype)
        B = _column_major(b, *((k, n) if transb == 0 else (n, k)), ldb, dtype)
        A, B = (A if transa == 0 else A.T), (B if transb == 0 else B.T)
        C = _column_major(c, m, n, ldc, dtype)
        one = np.frombuffer((ctypes.c_char * 8).from_address(alpha), dtype=dtype)[0]
        zero = np.frombuffer((ctypes.c_char * 8).from_address(beta), dtype=dtype)[0]
        # as cuBLAS: with beta = 0, C is not read (it may hold NaN: np.empty)
        C[...] = one * (A @ B) + (zero * C if zero else 0)

    return gemm


@pytest.mark.parametrize("dtype", ["f4", "f8"])
def test_the_recording_gemm_passes_row_major_operands_to_cublas_rightly(dtype):
    """The row-major product as cuBLAS's column-major one: every layout of both operands."""
    gemm = B._Gemm.__new__(B._Gemm)
    gemm.cupy = types.SimpleNamespace(
        empty=lambda shape, dtype: np.empty(shape, dtype).view(_DevArray),
        ascontiguousarray=lambda x: np.ascontiguousarray(x).view(_DevArray),
    )
    gemm.handle = 0
    gemm.scalars = {np.dtype(t): (np.ones(1, t), np.zeros(1, t)) for t in ("f4", "f8")}
    gemm.routines = {np.dtype(dtype): _fake_gemm(dtype)}
    rng = np.random.default_rng(0)
    big = rng.normal(size=(9, 12)).astype(dtype).view(_DevArray)
    x = np.ascontiguousarray(big[:5, :7]).view(_DevArray)  # (5, 7) C-contiguous
    W = np.ascontiguousarray(big[:7, :3]).view(_DevArray)  # (7, 3)
    dz = np.ascontiguousarray(big[:5, 4:7]).view(_DevArray)  # (5, 3)
    cases = [
        (x, W),  # forward: x @ W
        (x.T, dz),  # dW = x.T @ dz (an F-contiguous operand)
        (dz, W.T),  # dx = dz @ W.T
        (W.T, x.T),  # both transposed
        (big[:5:2, :7], W),  # neither C- nor F-contiguous: copied first
        (x[:1], W),  # one row (both flags)
    ]
    for a, b in cases:
        assert gemm.takes(a, b)
        np.testing.assert_allclose(gemm(a, b), np.asarray(a) @ np.asarray(b), rtol=1e-6)
    assert not gemm.takes(x, x)  # shapes that do not chain go to CuPy (and its error)
    assert not gemm.takes(x.astype("f2"), W.astype("f2"))


class _FakeCuda:
    """Just enough of CuPy (and nvmath's cuBLAS) to run Backend.capture's steps on CPU."""

    def __init__(self, log, fail_in_recording=False):
        self.log, self.fail = log, fail_in_recording
        fake = self

        class Device:
            id = 0

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        class Stream:
            ptr = 1234

            def __init__(self, non_blocking=False):
                assert non_blocking, "the legacy stream cannot record"
                self.capturing = False

            def __enter__(self):
                fake.current = self
                return self

            def __exit__(self, *exc):
                fake.current = None
                return False

            def begin_capture(self):
                log.append("begin")
                self.capturing = True

            def end_capture(self):
                log.append("end")
                self.capturing = False
                return types.SimpleNamespace(launch=lambda: log.append("launch"))

        self.current = None
        self.device = Device()
        self.cuda = types.SimpleNamespace(
            Stream=Stream,
            get_current_stream=lambda: types.SimpleNamespace(ptr=0),
            MemoryPool=lambda: types.SimpleNamespace(malloc=object()),
            using_allocator=lambda malloc: contextlib.nullcontext(),
        )
        self.uint8 = np.uint8
        self.empty = lambda n, dtype: np.empty(n, dtype).view(_DevArray)
        self.cublas = types.SimpleNamespace(
            create=lambda: 7,
            set_stream=lambda h, ptr: log.append(("stream", ptr)),
            set_workspace=lambda h, ptr, size: log.append(("workspace", size)),
            sgemm=None,
            dgemm=None,
        )

    def import_module(self, name, real=importlib.import_module):
        return {"cupy": self, "nvmath.bindings.cublas": self.cublas}.get(name) or real(name)


@pytest.mark.parametrize("fail", [False, True])
def test_cupy_capture_runs_once_then_records_with_its_own_gemm(monkeypatch, fail):
    log = []
    fake = _FakeCuda(log)
    monkeypatch.setattr(B.importlib, "import_module", fake.import_module)
    monkeypatch.setattr(B, "_GEMMS", {})
    backend = B.Backend("cupy", B._numpy_namespace(), fake.device)

    def step():
        recording = fake.current is not None and fake.current.capturing
        log.append(("step", recording, getattr(B._CAPTURE, "gemm", None) is not None))
        if recording and fail:
            raise RuntimeError("operation not permitted when stream is capturing")

    if fail:
        with pytest.raises(B.CaptureError, match=r"could not record.*not permitted"):
            backend.capture(step)
    else:
        replay = backend.capture(step)
        replay()
    # the real first call on the current stream, then the recording on its own stream: both
    # with the recording's products (cuBLAS's first calls on the handle happen outside it)
    assert log[:3] == [("stream", 0), ("workspace", B._WORKSPACE_BYTES), ("step", False, True)]
    assert log[3:5] == [("stream", 1234), ("workspace", B._WORKSPACE_BYTES)]
    begin = log.index("begin")
    assert log[begin + 1 : begin + 3] == [("step", True, True), "end"]  # also when it failed
    assert getattr(B._CAPTURE, "gemm", None) is None
    assert log[-1] == ("launch" if not fail else "end")


def test_cupy_capture_without_nvmath_says_what_to_install(monkeypatch):
    fake = _FakeCuda([])

    def import_module(name):
        if name.startswith("nvmath"):
            raise ImportError("No module named 'nvmath'")
        return fake.import_module(name)

    monkeypatch.setattr(B.importlib, "import_module", import_module)
    monkeypatch.setattr(B, "_GEMMS", {})
    calls = []
    backend = B.Backend("cupy", B._numpy_namespace(), fake.device)
    with pytest.raises(B.CaptureError, match="pip install nvmath-python"):
        backend.capture(lambda: calls.append(1))
    assert calls == [1]  # the step ran once, for real, as the engine counts on


def test_torch_capture_warms_up_on_a_side_stream_then_records(monkeypatch):
    log = []

    class Ctx:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            log.append(f"enter {self.name}")

        def __exit__(self, *exc):
            log.append(f"exit {self.name}")
            return False

    class Stream:
        def wait_stream(self, other):
            log.append("wait")

    graph = types.SimpleNamespace(replay=lambda: log.append("replay"))
    cuda = types.SimpleNamespace(
        device=lambda d: Ctx("device"),
        Stream=Stream,
        current_stream=Stream,
        stream=lambda s: Ctx("side stream"),
        CUDAGraph=lambda: graph,
        graph=lambda g: Ctx("graph"),
    )
    monkeypatch.setattr(B.importlib, "import_module", lambda name: types.SimpleNamespace(cuda=cuda))
    backend = B.Backend("torch", None, types.SimpleNamespace(type="cuda"))
    assert backend.can_capture
    replay = backend.capture(lambda: log.append("step"))
    replay()
    assert log == [
        "enter device", "wait", "enter side stream", "step", "exit side stream", "wait",
        "enter graph", "step", "exit graph", "exit device", "replay",
    ]  # fmt: skip


# -- the package is one namespace, as the module it was ------------------------------------------


def test_fuse_set_on_the_package_reaches_the_kernels(monkeypatch):
    """``bp.backend.FUSE = False``, a plain assignment as users write it, turns the kernels off."""
    from backprop.backend import kernels

    cupy_xp = types.ModuleType("fake cupy namespace")  # fused() runs only for the CuPy namespace
    monkeypatch.setitem(B._NAMESPACES, "cupy", cupy_xp)
    w = np.zeros(3)
    assert B.fused(cupy_xp, "relu_backward", w, w) is not None
    before = B.FUSE
    try:
        bp.backend.FUSE = False
        assert kernels.FUSE is False and B.FUSE is False
        assert B.fused(cupy_xp, "relu_backward", w, w) is None
    finally:
        bp.backend.FUSE = before
    assert kernels.FUSE is before


def test_private_names_follow_the_module_that_holds_them(monkeypatch):
    from backprop.backend import capture, selection

    with monkeypatch.context() as m:
        m.setattr(B, "_global", None)
        bp.set_backend("array_api_strict")  # rebinds selection._global: the package reads it
        assert B._global is selection._global
        assert B._global.name == "array_api_strict"
    assert B._global is selection._global  # restored by value, not deleted
    gemms = {}
    with monkeypatch.context() as m:
        m.setattr(B, "_GEMMS", gemms)
        assert capture._GEMMS is gemms  # what _cupy_capture reads
    assert capture._GEMMS is not gemms and B._GEMMS is capture._GEMMS


def test_the_modules_of_the_package_bind_each_name_to_one_object():
    """What makes ``bp.backend.NAME`` well defined: a name two modules hold is the same object."""
    seen, clashes = {}, []
    for part in B._PARTS:
        for name, value in vars(part).items():
            if name.startswith("__") and name.endswith("__"):
                continue
            if name in seen and seen[name][1] is not value:
                clashes.append(f"{name}: {seen[name][0]} and {part.__name__}")
            seen.setdefault(name, (part.__name__, value))
    assert not clashes
    assert {"FUSE", "_global", "_GEMMS", "_make", "_Gemm", "_NAMESPACES"} <= set(dir(B))


def test_public_objects_are_named_where_users_reach_them():
    """Tracebacks and reprs say ``backprop.backend.BackendError``, as before the split."""
    for name in ("Backend", "BackendError", "CaptureError", "resolve", "use_backend", "fused"):
        assert getattr(B, name).__module__ == "backprop.backend", name
    assert B.BackendError.__qualname__ == "BackendError"
