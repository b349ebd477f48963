"""Cost of running a device: dollars per hour and per million output tokens.

usd_per_hour = the spec's hourly (cloud on-demand) price when given, else its purchase
price amortised over 3 years of 24/7 use (26,280 h; power, hosting and interest excluded).
usd_per_million_tokens = devices x usd_per_hour x e2e_s / 3600 / output tokens x 1e6.
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


def usd_per_million_tokens(hardware, devices: int, e2e_s: float | None, output_tokens: int) -> float | None:
    hourly = usd_per_hour(hardware)
    if hourly is None or e2e_s is None:
        return None
    return devices * hourly * e2e_s / 3600.0 / output_tokens * 1e6
