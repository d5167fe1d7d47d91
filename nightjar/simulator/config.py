"""Knobs of the synthetic shop: traffic shape, funnel, lifecycle and dirt rates.

Every rate lives here so that tests can raise a rate to make rare behaviour visible and
benchmarks can scale volume, without touching the generator code. The defaults give the
"default shop" of DESIGN.md (730 days, 5000 customers -> a few million events).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SimConfig:
    # --- volume -------------------------------------------------------------------------
    # Multiplies every visit rate (customers, prospects, window shoppers, bots) but not the
    # number of sign-ups, so benchmarks can reach 10^7..10^8 events with a sane customer count.
    traffic_scale: float = 1.0
    # Share of `customers` that already exist (signed up in the year before `start`).
    initial_customer_share: float = 0.25
    # Expected sessions per day of an active customer with engagement 1.0.
    customer_visit_rate: float = 0.16
    # Anonymous window-shopper sessions per expected sign-up (visitors who never register).
    window_shoppers_per_signup: float = 20.0
    # Sign-ups with anonymous visits on earlier days (the rest sign up on their first visit).
    prospect_return_share: float = 0.5
    n_products: int = 200
    batches_per_day: int = 4

    # --- seasonality ----------------------------------------------------------------------
    # Monday..Sunday traffic multipliers (a consumer shop: weekend is busier).
    weekly_profile: tuple[float, ...] = (0.95, 0.92, 0.94, 0.97, 1.02, 1.22, 1.18)
    yearly_amplitude: float = 0.15  # winter (December) peak, summer trough
    growth_per_year: float = 0.35  # traffic and sign-ups grow ~35 % per year
    black_friday_boost: float = 2.4
    cyber_monday_boost: float = 1.8
    christmas_boost: float = 1.35  # 1..22 December

    # --- funnel (per-session conditional step rates, identical for every segment) ---------
    p_product_view: float = 0.65  # session views >= 1 product
    p_add_to_cart: float = 0.35  # ... and adds to cart
    p_checkout: float = 0.55  # ... and starts checkout
    p_purchase: float = 0.70  # ... and completes the purchase (customers only: no guest checkout)
    logged_out_share: float = 0.35  # customer sessions that start anonymous and log in later
    second_device_share: float = 0.4  # customers with a second device (phone)

    # --- customers: engagement and churn ------------------------------------------------------
    engagement_sigma: float = 0.6
    churn_hazard: float = 0.0035  # daily churn hazard at engagement 1.0 (lower when engaged)
    churn_engagement_power: float = 1.0  # hazard = churn_hazard / engagement**power
    fade_days: int = 30  # visits fade out over this many days before churn ...
    fade_floor: float = 0.3  # ... down to this share of the usual rate
    profile_update_rate: float = 0.0005  # per customer per day (email change -> updated_at moves)
    price_change_rate: float = 0.002  # per product per day (price change -> updated_at moves)

    # --- orders ---------------------------------------------------------------------------------
    cancel_rate: float = 0.03
    refund_rate: float = 0.05

    # --- dirt -----------------------------------------------------------------------------------
    bot_rate: float = 0.02  # share of all event lines coming from bots
    duplicate_rate: float = 0.01  # share of events delivered twice (same event_id)
    late_file_rate: float = 0.02  # share of batch files landing 1..3 days late
    malformed_rate: float = 0.001  # share of extra lines that must be rejected
    non_utc_offset_rate: float = 0.15  # sessions whose SDK sends local offsets (+02:00, -05:00)
    nonnormal_name_rate: float = 0.003  # "Page Viewed", "page-viewed", " product_viewed "
    out_of_order_rate: float = 0.03  # lines swapped with a near neighbour inside a file
    clock_skew_rate: float = 0.01  # sessions on a device whose clock is off by seconds..minutes
    plain_file_rate: float = 0.01  # batch files written as plain .jsonl (not gzip)
    midnight_gap_rate: float = 0.003  # in-session gaps > 30 min (client session_id spans 2 sessions)

    # --- planted incidents ----------------------------------------------------------------------
    outage_purchase_factor: float = 0.04  # purchase rate multiplier on the checkout-outage day
    bot_spike_factor: float = 12.0  # bot traffic multiplier on the bot-spike day
    marketing_spike_factor: float = 3.0  # extra campaign traffic on the marketing-spike day
    tracking_outage_start_hour: int = 4  # on the tracking-outage day no event is delivered after this UTC hour

    gzip_level: int = 3  # level 3 is ~2x faster than 6 for ~10 % larger files

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["weekly_profile"] = list(self.weekly_profile)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "weekly_profile" in kw:
            kw["weekly_profile"] = tuple(kw["weekly_profile"])
        return cls(**kw)


__all__ = ["SimConfig"]
