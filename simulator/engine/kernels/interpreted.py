"""How a process starts its kernels. As plain Python, for a process that evaluates a
handful of points (``llmsim predict``, ``compare``, ``roofline``): what numba's
NUMBA_DISABLE_JIT=1 does (the tests run the kernels that way too), without importing numba (~0.3 s here) or loading its cached
machine code (~0.7 s more: loading any cached kernel imports numba's whole registry,
scipy.linalg included). One scenario then costs ~2 ms of Python instead of ~1 s of start-up.

``use()`` puts a stand-in ``numba`` module (``njit`` as the identity, ``prange`` as range) in
sys.modules before any kernel module is imported. It changes nothing, and returns False,
when numba is already imported or LLMSIM_KERNELS=numba asks for compiled kernels. Call it
only at the start of a process that runs no sweep: later code in it gets the stand-in.
``skip_blas_probe()`` spares a process that loads compiled kernels scipy.linalg.
"""
from __future__ import annotations

import os
import sys
import types

ENV = "LLMSIM_KERNELS"          # "numba": compiled kernels even where use() is called


def _njit(*args, **_options):
    """njit(f), njit(**options)(f) and njit(signature)(f) all return f itself."""
    if len(args) == 1 and callable(args[0]):
        return args[0]
    return lambda f: f


def use() -> bool:
    """Run the kernels as plain Python in this process (see the module docstring)."""
    if "numba" in sys.modules or os.environ.get(ENV) == "numba":
        return False
    stand_in = types.ModuleType("numba", "llmsim's stand-in: kernels run as plain Python (engine/kernels/interpreted.py)")
    stand_in.njit = _njit
    stand_in.prange = range
    sys.modules["numba"] = stand_in
    return True


def skip_blas_probe() -> bool:
    """Load compiled kernels without numba's BLAS probe: numba.np.arraymath, imported on the
    first cached kernel a process loads, imports scipy.linalg to see whether np.dot can
    compile (~0.5 s here). No llmsim kernel calls BLAS, so the probe is answered "no" (a
    kernel compiled later in this process cannot use np.dot). Returns False, changing
    nothing, when numba runs as plain Python or arraymath is already imported."""
    probe = "scipy.linalg.cython_blas"
    if active() or "numba.np.arraymath" in sys.modules or probe in sys.modules:
        return False
    sys.modules[probe] = None               # import fails at once, scipy.linalg untouched
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[probe]
    return True


def active() -> bool:
    """Whether this process runs the kernels as plain Python."""
    return getattr(sys.modules.get("numba"), "njit", None) is _njit
