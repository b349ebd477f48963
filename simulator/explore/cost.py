"""Cost of running a device: dollars per hour and per million output tokens.

usd_per_hour = the spec's hourly (cloud on-demand) price when given, else its purchase
price amortised over 3 years of 24/7 use (26,280 h; power, hosting and interest excluded).
usd_per_million = devices x usd_per_hour / 3600 / (output tokens per s) x 1e6: the devices'
time per million output tokens at that rate (one request of B N tokens in e2e_s seconds:
tokens/s = B N / e2e_s). Every cost per token in the package is this one formula.
"""
from __future__ import annotations

AMORTISATION_HOURS = 3 * 365 * 24


def usd_per_hour(hardware) -> float | None:
    price = hardware.price
    if price is None:
        return None
    if price.hourly_usd_per_h is not None:
        return price.hourly_usd_per_h
    if price.purchase_usd is not None:
        return price.purchase_usd / AMORTISATION_HOURS
    return None


def usd_per_million(usd_per_hour: float, devices: int, tokens_per_s):
    """Dollars per million output tokens of ``devices`` at ``usd_per_hour`` each serving
    ``tokens_per_s`` (floats or numpy arrays; NaN in, NaN out)."""
    return devices * usd_per_hour / 3600.0 / tokens_per_s * 1e6


def usd_per_million_tokens(hardware, devices: int, e2e_s: float | None, output_tokens: int) -> float | None:
    """usd_per_million for one request of ``output_tokens`` in ``e2e_s``; None without a price or a time."""
    hourly = usd_per_hour(hardware)
    if hourly is None or e2e_s is None:
        return None
    return usd_per_million(hourly, devices, output_tokens / e2e_s)
