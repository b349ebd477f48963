"""Loading a sweep's cached numba kernels without numba's compiler set-up.

numba's cache, before it loads a cached kernel, refreshes the target context: it imports
and registers every implementation numba can compile (lists, sets, dicts, random,
polynomials, jitclass, ...: ~0.15-0.2 s in a process here, more than the load itself,
~0.05 s). Machine code read from the cache needs none of that, only numba's runtime (NRT)
set up; a compilation refreshes the context itself (numba.core.compiler's pipeline does, on
any cache miss). ``load_light(dispatcher)`` makes that dispatcher's cache loads do just
that: start the NRT, then load. It changes nothing, and returns False, for a dispatcher
without a disk cache, a stand-in from engine/kernels/interpreted.py, or a numba whose cache
does not have the parts this relies on (then loads refresh as they always do).
"""
from __future__ import annotations


def load_light(dispatcher) -> bool:
    """Make ``dispatcher``'s cache loads skip the target context's refresh (see the module
    docstring); True when they now do."""
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "_load_overload", None)
    if load is None or "load_overload" in vars(cache):
        return False
    try:
        from numba.core.runtime.nrt import rtsys
    except ImportError:
        return False

    def load_overload(sig, target_context):
        rtsys.initialize(target_context)        # what the refresh did that cached code needs
        return load(sig, target_context)

    cache.load_overload = load_overload
    return True
