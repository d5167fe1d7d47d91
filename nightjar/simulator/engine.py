"""The day loop: plan who visits, render their sessions, add dirt, write files and rows.

Memory is bounded by one day of events plus the customer table: each day is planned,
rendered, written and dropped before the next one starts. Every random draw of day D
comes from streams keyed by (seed, D, purpose), and everything that outlives a day
(customers, catalogue, order lifecycles, held-back late files, counters) is persisted in
the world state, so `append_days` continues a world exactly where it stopped.

Over 500 lines because the day loop is one algorithm whose steps share the day's random
streams and the world state; split, each piece would need all of them passed around.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import landing
from .catalog import Catalog
from .config import SimConfig
from .dirt import MALFORMED_KINDS, make_malformed, shuffle_locally
from .population import Population
from .reference import (
    ACQUISITION_WEIGHTS, BOT_AGENTS, CHANNEL_GROUPS, CHANNELS, DIURNAL, EMAIL_DOMAINS, FIRST_NAMES, GEO,
    GEO_WEIGHTS, HUMAN_DEVICE_WEIGHTS, LAST_NAMES, PAID_SOCIAL, RETURNING_WEIGHTS, WINDOW_SHOPPER_WEIGHTS,
)
from .rng import hex_id, np_stream, py_stream
from .seasonality import CATEGORIES, traffic_multiplier
from .sessions import ANON, KNOWN, LOGIN, SIGNUP, DayRenderer, SessionPlan
from .shopdb import DayWriter, create_schema, money, open_engine, products
from .timefmt import EPOCH_ORDINAL, MS_PER_DAY, day_start_ms, fmt_ms, ms_to_naive_utc, tz_offset

STATE_VERSION = 1
MAX_PROSPECT_DELAY = 14  # days between a prospect's first anonymous visit and the sign-up


def _norm(w: tuple[float, ...]) -> np.ndarray:
    a = np.asarray(w, dtype=float)
    return a / a.sum()


_GEO_P = _norm(GEO_WEIGHTS)
_DEV_P = _norm(HUMAN_DEVICE_WEIGHTS)
_ACQ_P = _norm(ACQUISITION_WEIGHTS)
_RET_P = _norm(RETURNING_WEIGHTS)
_WIN_P = _norm(WINDOW_SHOPPER_WEIGHTS)
_DIURNAL_P = _norm(DIURNAL)


def engagement_level(e: float) -> str:
    return "low" if e < 0.7 else ("high" if e > 1.4 else "medium")


@dataclass
class World:
    out: Path
    cfg: SimConfig
    seed: int
    world_start: int  # ordinal of the first simulated day
    next_day: int  # ordinal of the next day to simulate
    target_customers: int
    signup_lam: float  # expected sign-ups per unit of traffic multiplier
    pop: Population
    catalog: Catalog
    next_order: int = 1
    malformed_counter: int = 0
    incidents: dict[str, dict] = field(default_factory=dict)
    pending_transitions: dict[int, list[list]] = field(default_factory=dict)
    dirt: dict[str, Any] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    _plans: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ persistence
    @property
    def state_dir(self) -> Path:
        return self.out / landing.STATE_DIR

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.pop.save(self.state_dir / "customers.npz")
        state = {
            "version": STATE_VERSION, "seed": self.seed, "config": self.cfg.to_dict(),
            "world_start": date.fromordinal(self.world_start).isoformat(),
            "next_day": date.fromordinal(self.next_day).isoformat(),
            "target_customers": self.target_customers, "signup_lam": self.signup_lam,
            "next_order": self.next_order, "malformed_counter": self.malformed_counter,
            "incidents": self.incidents, "dirt": self.dirt, "totals": self.totals, "runs": self.runs,
            "pending_transitions": {str(k): v for k, v in sorted(self.pending_transitions.items())},
            "catalog": self.catalog.to_state(),
        }
        (self.state_dir / "state.json").write_text(json.dumps(state, sort_keys=True))

    @classmethod
    def load(cls, out: Path) -> "World":
        sd = out / landing.STATE_DIR
        if not (sd / "state.json").exists():
            raise FileNotFoundError(f"{out} holds no simulated shop (missing {sd / 'state.json'}); run simulate first")
        s = json.loads((sd / "state.json").read_text())
        if s["version"] != STATE_VERSION:
            raise ValueError(f"unsupported simulator state version {s['version']}")
        return cls(
            out=out, cfg=SimConfig.from_dict(s["config"]), seed=s["seed"],
            world_start=date.fromisoformat(s["world_start"]).toordinal(),
            next_day=date.fromisoformat(s["next_day"]).toordinal(),
            target_customers=s["target_customers"], signup_lam=s["signup_lam"],
            pop=Population.load(sd / "customers.npz"), catalog=Catalog.from_state(s["catalog"]),
            next_order=s["next_order"], malformed_counter=s["malformed_counter"], incidents=s["incidents"],
            pending_transitions={int(k): v for k, v in s["pending_transitions"].items()},
            dirt=s["dirt"], totals=s["totals"], runs=s["runs"],
        )

    # ------------------------------------------------------------------ calendar helpers
    def multiplier(self, day: int) -> float:
        return traffic_multiplier(date.fromordinal(day), date.fromordinal(self.world_start), self.cfg)

    def incident_day(self, kind: str) -> int | None:
        inc = self.incidents.get(kind)
        return date.fromisoformat(inc["date"]).toordinal() if inc else None

    def signup_plan(self, day: int) -> dict[str, np.ndarray]:
        """Everyone who signs up on `day`: their attributes and their earlier anonymous visits.

        Computed from the day's own stream so that day t can look ahead (prospects whose
        first visit is today sign up within 14 days) without any state."""
        cached = self._plans.get(day)
        if cached is not None:
            return cached
        for old in [k for k in self._plans if k < self.next_day]:
            del self._plans[old]  # each day's plan is looked at from 15 days: keep a window
        cfg = self.cfg
        rng = np_stream(self.seed, day, "signups")
        lam = self.signup_lam * self.multiplier(day)
        spike = day == self.incident_day("marketing_spike")
        if spike:
            lam *= 1.0 + (cfg.marketing_spike_factor - 1.0) * 0.5
        n = int(rng.poisson(lam))
        returning = rng.random(n) < cfg.prospect_return_share
        delay = np.where(returning, np.minimum(rng.geometric(0.2, n), MAX_PROSPECT_DELAY), 0)
        mid = np.where(delay >= 2, 1 + np.floor(rng.random(n) * np.maximum(delay - 1, 1)), 0).astype(np.int64)
        channel = rng.choice(len(_ACQ_P), n, p=_ACQ_P)
        engagement = Population.draw_engagement(rng, channel, cfg)
        churn_day = Population.draw_churn_day(rng, engagement, day, cfg)
        dev1 = rng.choice(len(_DEV_P), n, p=_DEV_P)
        plan = self._plans[day] = {
            "delay": delay, "mid": mid, "channel": channel, "engagement": engagement, "churn_day": churn_day,
            "geo": rng.choice(len(_GEO_P), n, p=_GEO_P), "device0": rng.choice(len(_DEV_P), n, p=_DEV_P),
            "device1": np.where(rng.random(n) < cfg.second_device_share, dev1, -1),
            "campaign": (rng.random(n) < 0.8) if spike else np.zeros(n, dtype=bool),
        }
        return plan


# ---------------------------------------------------------------------------- world creation
def create_world(out: Path, start: date, days: int, customers: int, seed: int, cfg: SimConfig) -> World:
    start_ord = start.toordinal()
    rng = np_stream(seed, 0, "world")
    n0 = int(round(customers * cfg.initial_customer_share))
    weights = sum(traffic_multiplier(date.fromordinal(start_ord + i), start, cfg) for i in range(days))
    pop = Population(capacity=max(1024, int(customers * 1.3)))
    world = World(out=out, cfg=cfg, seed=seed, world_start=start_ord, next_day=start_ord,
                  target_customers=customers, signup_lam=max(customers - n0, 0) / max(weights, 1e-9),
                  pop=pop, catalog=Catalog.generate(seed, cfg.n_products, day_start_ms(start_ord)))
    # customers that signed up during the year before the simulated period (and are still active)
    created = np.sort(day_start_ms(start_ord) - rng.integers(MS_PER_DAY, 400 * MS_PER_DAY, n0))
    channel = rng.choice(len(_ACQ_P), n0, p=_ACQ_P)
    engagement = Population.draw_engagement(rng, channel, cfg)
    churn = Population.draw_churn_day(rng, engagement, start_ord - 1, cfg)
    geo = rng.choice(len(_GEO_P), n0, p=_GEO_P)
    d0 = rng.choice(len(_DEV_P), n0, p=_DEV_P)
    d1 = np.where(rng.random(n0) < cfg.second_device_share, rng.choice(len(_DEV_P), n0, p=_DEV_P), -1)
    for j in range(n0):
        pop.append(engagement=engagement[j], created_ms=created[j], churn_day=churn[j], geo=geo[j],
                   device0=d0[j], device1=d1[j], anon_day=-1, anon_j=j, channel=channel[j])
    # planted incidents, on distinct days well inside the period
    # (a period shorter than 3 days cannot hold all three; they are then partly left out)
    lo, hi = (min(7, days // 4), days - 2) if days >= 10 else (0, days)
    offsets = rng.choice(np.arange(lo, hi), size=min(3, hi - lo), replace=False).tolist()
    kinds = ["checkout_outage", "bot_spike", "marketing_spike"]
    for kind, off in zip(kinds, offsets):
        day = date.fromordinal(start_ord + int(off)).isoformat()
        if kind == "checkout_outage":
            world.incidents[kind] = {"date": day, "purchase_rate_factor": cfg.outage_purchase_factor}
        elif kind == "bot_spike":
            world.incidents[kind] = {"date": day, "bot_traffic_factor": cfg.bot_spike_factor}
        else:
            name = f"flash_sale_{day.replace('-', '')}"
            world.incidents[kind] = {"date": day, "traffic_factor": cfg.marketing_spike_factor,
                                     "utm_source": "instagram", "utm_medium": "paid_social", "utm_campaign": name}
    # a tracking outage (events stop, orders go on) on another free day, drawn from its own
    # stream so that the three incidents above keep their days for a given seed
    free = sorted(set(range(lo, hi)) - {int(o) for o in offsets})
    if free:
        off = int(np_stream(seed, start_ord, "tracking_outage").choice(free))
        world.incidents["tracking_outage"] = {
            "date": date.fromordinal(start_ord + off).isoformat(),
            "events_lost_from_hour_utc": cfg.tracking_outage_start_hour}
    world.dirt = {"duplicates": 0, "bot_events": 0, "malformed": {}, "malformed_variants": {}, "late_files": 0,
                  "plain_files": 0, "nonnormal_event_names": 0, "out_of_order_swaps": 0}
    world.totals = {"events": 0, "lines": 0, "files": 0, "orders": 0, "sessions": 0}
    # the catalogue and the pre-existing customers exist before day one
    eng = open_engine(out / "shop.sqlite")
    create_schema(eng)
    with eng.begin() as conn:
        cat = world.catalog
        conn.execute(products.insert(), [
            {"product_id": cat.product_ids[i], "name": cat.names[i], "category": CATEGORIES[int(cat.category[i])],
             "price": money(cat.price[i]), "updated_at": ms_to_naive_utc(int(cat.updated_ms[i]))}
            for i in range(len(cat.product_ids))])
        w = DayWriter()
        for j in range(n0):
            w.new_customers.append(_customer_row(world, j, int(created[j])))
        w.flush(conn)
    eng.dispose()
    return world


def customer_id(idx: int) -> str:
    return f"c_{idx + 1:06d}"


def _customer_row(world: World, idx: int, created_ms: int) -> dict:
    rng = np_stream(world.seed, idx, "email")
    first = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
    last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
    email = f"{first}.{last}{idx + 1}@{EMAIL_DOMAINS[int(rng.integers(len(EMAIL_DOMAINS)))]}"
    ts = ms_to_naive_utc(created_ms)
    return {"customer_id": customer_id(idx), "email": email, "country": GEO[int(world.pop.geo[idx])][0],
            "created_at": ts, "updated_at": ts}


# ---------------------------------------------------------------------------- one day
def _start_times(rng: np.random.Generator, day_ms: int, geo: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Session starts following a local diurnal profile, folded into the UTC day."""
    n = len(geo)
    local = rng.choice(24, n, p=_DIURNAL_P) * 3_600_000 + rng.integers(0, 3_600_000, n)
    return day_ms + (local - offsets[geo]) % MS_PER_DAY


def _stages(rng: np.random.Generator, n: int, cfg: SimConfig, purchase_factor: float) -> np.ndarray:
    p = np.array([cfg.p_product_view, cfg.p_add_to_cart, cfg.p_checkout, cfg.p_purchase * purchase_factor])
    return np.cumprod(rng.random((n, 4)) < p, axis=1).sum(axis=1)


def simulate_day(world: World, writer: DayWriter) -> dict[str, int]:
    cfg, seed, day = world.cfg, world.seed, world.next_day
    d = date.fromordinal(day)
    day_ms = day_start_ms(day)
    mult = world.multiplier(day)
    rng = np_stream(seed, day, "plan")
    geo_off = np.array([tz_offset(g[4], day)[0] for g in GEO], dtype=np.int64)
    outage = day == world.incident_day("checkout_outage")
    spike = day == world.incident_day("marketing_spike")
    pop = world.pop
    n_existing = len(pop)

    # slowly changing catalogue and customer profiles (move updated_at)
    for i in world.catalog.drift_prices(seed, day, day_ms, cfg.price_change_rate):
        writer.product_updates.append({"pid": world.catalog.product_ids[i], "price": money(world.catalog.price[i]),
                                       "ts": ms_to_naive_utc(int(world.catalog.updated_ms[i]))})
    if n_existing:
        urng = np_stream(seed, day, "profiles")
        for i in np.flatnonzero(urng.random(n_existing) < cfg.profile_update_rate).tolist():
            ts = day_ms + int(urng.integers(MS_PER_DAY))
            dom = EMAIL_DOMAINS[int(urng.integers(len(EMAIL_DOMAINS)))]
            writer.customer_updates.append({"cid": customer_id(i), "new_email": f"{customer_id(i)}.{day}@{dom}",
                                            "ts": ms_to_naive_utc(ts)})

    plans: list[tuple[int, int, SessionPlan, Any]] = []  # (start, tiebreak, plan, signup attrs)

    # 1. returning customers
    counts = pop.visit_counts(day, mult, rng, cfg)
    idx = np.repeat(np.arange(n_existing), counts)
    n = len(idx)
    if n:
        geo = pop.geo[idx].astype(np.int64)
        starts = _start_times(rng, day_ms, geo, geo_off)
        logged_out = rng.random(n) < cfg.logged_out_share
        dev1 = pop.device1[idx]
        use_d1 = (dev1 >= 0) & (rng.random(n) < 0.4)
        device = np.where(use_d1, dev1, pop.device0[idx])
        channel = rng.choice(len(_RET_P), n, p=_RET_P)
        stage = _stages(rng, n, cfg, cfg.outage_purchase_factor if outage else 1.0)
        anon_day, anon_j = pop.anon_day[idx], pop.anon_j[idx]
        for k in range(n):
            c = int(idx[k])
            anon = hex_id(seed, "d1", c) if use_d1[k] else hex_id(seed, "p", int(anon_day[k]), int(anon_j[k]))
            plan = SessionPlan(int(starts[k]), "a_" + anon, int(geo[k]), int(device[k]), int(channel[k]),
                               int(stage[k]), LOGIN if logged_out[k] else KNOWN, customer_id(c))
            plans.append((plan.start_ms, k, plan, None))

    # 2. prospects: anonymous visits before sign-up, and the sign-ups themselves
    for ahead in range(MAX_PROSPECT_DELAY + 1):
        sday = day + ahead
        sp = world.signup_plan(sday)
        m = len(sp["delay"])
        if not m:
            continue
        if ahead == 0:
            sel = np.arange(m)
        else:
            sel = np.flatnonzero((sp["delay"] == ahead) | (sp["mid"] == ahead))
        if not len(sel):
            continue
        prng = np_stream(seed, day, f"prospects+{ahead}")
        geo = sp["geo"][sel]
        starts = _start_times(prng, day_ms, geo, geo_off)
        stage = _stages(prng, len(sel), cfg, cfg.outage_purchase_factor if outage else 1.0)
        for k, j in enumerate(sel.tolist()):
            first_visit = sp["delay"][j] == ahead and ahead > 0
            ch = int(sp["channel"][j]) if (first_visit or sp["delay"][j] == 0) else 5
            # the flash-sale campaign brings sign-ups that day (not their earlier visits)
            camp = _spike_campaign(world) if (sp["campaign"][j] and ahead == 0 and sp["delay"][j] == 0) else None
            plan = SessionPlan(int(starts[k]), "a_" + hex_id(seed, "p", sday, j), int(geo[k]),
                               int(sp["device0"][j]), ch, int(stage[k]) if ahead == 0 else min(int(stage[k]), 3),
                               SIGNUP if ahead == 0 else ANON, None, camp)
            plans.append((plan.start_ms, 1_000_000 * (ahead + 1) + k, plan, (sday, j) if ahead == 0 else None))

    # 3. window shoppers (never register) and the marketing spike's extra traffic
    wrng = np_stream(seed, day, "window")
    n_win = int(wrng.poisson(cfg.window_shoppers_per_signup * world.signup_lam * mult * cfg.traffic_scale))
    n_camp = int(wrng.poisson(n_win * (cfg.marketing_spike_factor - 1.0))) if spike else 0
    geo = wrng.choice(len(_GEO_P), n_win + n_camp, p=_GEO_P)
    starts = _start_times(wrng, day_ms, geo, geo_off)
    device = wrng.choice(len(_DEV_P), n_win + n_camp, p=_DEV_P)
    channel = wrng.choice(len(_WIN_P), n_win + n_camp, p=_WIN_P)
    stage = np.minimum(_stages(wrng, n_win + n_camp, cfg, 1.0), 3)
    ids = wrng.integers(0, 2**63 - 1, n_win + n_camp)
    for k in range(n_win + n_camp):
        camp = _spike_campaign(world) if k >= n_win else None
        plan = SessionPlan(int(starts[k]), "a_%020x" % int(ids[k]), int(geo[k]), int(device[k]),
                           2 if camp else int(channel[k]), int(stage[k]), ANON, None, camp)
        plans.append((plan.start_ms, 100_000_000 + k, plan, None))

    # 4. render in time order (ids of new customers and orders then increase with time)
    plans.sort(key=lambda p: (p[0], p[1]))
    prng = py_stream(seed, day, "events")
    r = DayRenderer(seed, day, cfg, world.catalog, prng, world.catalog.day_weights(d.month), world.next_order)
    for _start, _tb, plan, signup in plans:
        if signup is not None:
            sday, j = signup
            sp = world.signup_plan(sday)
            # a flash-sale sign-up without earlier visits was acquired by the campaign's landing
            acquired = PAID_SOCIAL if (sp["campaign"][j] and sp["delay"][j] == 0) else sp["channel"][j]
            c = pop.append(engagement=sp["engagement"][j], created_ms=plan.start_ms, churn_day=sp["churn_day"][j],
                           geo=sp["geo"][j], device0=sp["device0"][j], device1=sp["device1"][j],
                           anon_day=sday, anon_j=j, channel=acquired)
            plan.user_id = customer_id(c)
        r.human_session(plan)
    human_events = len(r.out)

    # 5. bots: a share of all traffic, x bot_spike_factor on the bot-spike day
    brng = np_stream(seed, day, "bots")
    bot_target = human_events * cfg.bot_rate / max(1e-9, 1 - cfg.bot_rate)
    if day == world.incident_day("bot_spike"):
        bot_target *= cfg.bot_spike_factor
    bot_events = 0
    while bot_events < bot_target:
        bot_events += r.bot_session(day_ms + int(brng.integers(MS_PER_DAY)), int(brng.choice(len(_GEO_P), p=_GEO_P)),
                                    int(brng.integers(len(BOT_AGENTS))), math.ceil(bot_target - bot_events))

    # 6. shop database: new customers (created at their sign-up event), orders and lifecycles
    for cid, ms, _method in r.signups:
        i = int(cid[2:]) - 1
        pop.cols["created_ms"][i] = ms
        writer.new_customers.append(_customer_row(world, i, ms))
    orng = np_stream(seed, day, "orders")
    for p in r.purchases:
        ts = ms_to_naive_utc(p.created_ms)
        writer.new_orders.append({"order_id": p.order_id, "customer_id": p.customer_id, "status": "placed",
                                  "currency": p.currency, "total_amount": money(p.total), "created_at": ts,
                                  "updated_at": ts})
        for ln, (pi, qty, unit) in enumerate(p.items, start=1):
            writer.new_items.append({"order_id": p.order_id, "line_number": ln, "product_id": world.catalog.product_ids[pi],
                                     "quantity": qty, "unit_price": money(unit)})
        _schedule_lifecycle(world, p.order_id, p.created_ms, orng)
    world.next_order = r.next_order
    due = sorted(world.pending_transitions.pop(day, []))
    for ms, oid, status in due:
        writer.order_updates.append({"oid": oid, "new_status": status, "ts": ms_to_naive_utc(ms)})

    # 7. dirt and files; on the tracking-outage day the SDK stops delivering at a fixed hour,
    # while the shop database (orders, sign-ups) goes on as usual
    if day == world.incident_day("tracking_outage"):
        _lose_events(world, r, day_ms + cfg.tracking_outage_start_hour * 3_600_000)
    n_events = len(r.out)
    files, lines = _write_day(world, r, prng, d, day_ms)
    stats = {"events": n_events, "lines": lines, "files": files, "orders": len(r.purchases),
             "sessions": len(plans), "signups": len(r.signups), "bot_events": bot_events,
             "status_changes": len(due)}
    world.dirt["bot_events"] += bot_events
    world.dirt["nonnormal_event_names"] += r.nonnormal
    return stats


_EVENT_NAME = re.compile(r'"event_name":"([^"]*)"')
_ORDER_ID = re.compile(r'"order_id":"([^"]+)"')


def _lose_events(world: World, r: DayRenderer, cut_ms: int) -> None:
    """The tracking outage: drop every event received from `cut_ms` on, and write down in the
    ground truth what was lost (orders and sign-ups that the shop has and the events do not)."""
    kept, lost = [], []
    for e in r.out:
        (kept if e[0] < cut_ms else lost).append(e)
    r.out[:] = kept
    names, orders = [], []
    for _recv, head, tail in lost:
        line = head + tail
        m = _EVENT_NAME.search(line)
        names.append(m.group(1) if m else "")
        o = _ORDER_ID.search(line)
        if o:
            orders.append(o.group(1))
    normal = [re.sub(r"[\s\-]+", "_", n.strip().lower()) for n in names]
    r.nonnormal -= sum(1 for n, nn in zip(names, normal) if n != nn)  # dirt counts delivered lines only
    world.incidents["tracking_outage"].update(
        events_lost=len(lost), lost_order_ids=sorted(orders), lost_signups=normal.count("user_signed_up"))


def _spike_campaign(world: World) -> tuple[str, str]:
    inc = world.incidents["marketing_spike"]
    return (f'{{"source":"{inc["utm_source"]}","medium":"{inc["utm_medium"]}","name":"{inc["utm_campaign"]}"}}',
            '"https://l.instagram.com/"')


def _schedule_lifecycle(world: World, oid: str, created: int, rng: np.random.Generator) -> None:
    """placed -> paid -> shipped -> delivered (-> refunded), or cancelled before shipping."""
    cfg = world.cfg
    hour = 3_600_000
    u = rng.random(6)
    events: list[tuple[int, str]] = []
    paid = created + int(60_000 + u[0] * 14 * 60_000)
    if u[1] < cfg.cancel_rate:
        cancel = created + int(10 * 60_000 + u[2] * 36 * hour)
        if cancel > paid:
            events.append((paid, "paid"))
        events.append((cancel, "cancelled"))
    else:
        shipped = paid + int(12 * hour + u[2] * 48 * hour)
        delivered = shipped + int(36 * hour + u[3] * 110 * hour)
        events += [(paid, "paid"), (shipped, "shipped"), (delivered, "delivered")]
        if u[4] < cfg.refund_rate:
            events.append((delivered + int(2 * 24 * hour + u[5] * 28 * 24 * hour), "refunded"))
    for ms, status in events:
        world.pending_transitions.setdefault(ms // MS_PER_DAY + EPOCH_ORDINAL, []).append([ms, oid, status])


def _write_day(world: World, r: DayRenderer, rng: Any, d: date, day_ms: int) -> tuple[int, int]:
    cfg = world.cfg
    events = r.out
    n = len(events)
    # duplicate deliveries: the same line again, received seconds..hours later (maybe a later batch)
    n_dup = int(np.random.default_rng(rng.getrandbits(64)).binomial(n, cfg.duplicate_rate)) if n else 0
    for i in sorted(rng.sample(range(n), min(n_dup, n))):
        recv, head, tail = events[i]
        events.append((recv + 1_000 + int(rng.expovariate(1 / 600_000)), head, tail))
    world.dirt["duplicates"] += min(n_dup, n)
    # batches by receive time; everything after the last cut (even after midnight) in the last one
    nb = cfg.batches_per_day
    span = MS_PER_DAY // nb
    buckets: list[list[tuple[int, str, str]]] = [[] for _ in range(nb)]
    for ev in events:
        buckets[min(max((ev[0] - day_ms) // span, 0), nb - 1)].append(ev)
    events.clear()  # from here on each bucket owns its events and is freed once written
    # malformed lines, round-robin over every rejection kind
    n_bad = int(np.random.default_rng(rng.getrandbits(64)).binomial(n, cfg.malformed_rate)) if n else 0
    bad: list[list[str]] = [[] for _ in range(nb)]
    for _ in range(n_bad):
        variant, reason = MALFORMED_KINDS[world.malformed_counter % len(MALFORMED_KINDS)]
        world.malformed_counter += 1
        b = rng.randrange(nb)
        if not buckets[b]:
            b = max(range(nb), key=lambda i: len(buckets[i]))
        recv, head, tail = buckets[b][rng.randrange(len(buckets[b]))]
        bad[b].append(make_malformed(variant, recv, head, tail, rng))
        world.dirt["malformed"][reason] = world.dirt["malformed"].get(reason, 0) + 1
        world.dirt["malformed_variants"][variant] = world.dirt["malformed_variants"].get(variant, 0) + 1
    files = lines = 0
    for b in range(nb):
        bucket = buckets[b]
        if not bucket and not bad[b]:
            continue
        bucket.sort(key=lambda e: e[0])
        out = [h + fmt_ms(t) + tl for t, h, tl in bucket]
        buckets[b] = bucket = []
        for line in bad[b]:
            out.insert(rng.randrange(len(out) + 1), line)
        world.dirt["out_of_order_swaps"] += shuffle_locally(out, cfg.out_of_order_rate, rng)
        plain = rng.random() < cfg.plain_file_rate
        late = rng.random() < cfg.late_file_rate
        lag = 1 + rng.randrange(3) if late else 0
        landed = day_ms + (b + 1) * span + 5 * 60_000 + lag * (MS_PER_DAY + rng.randrange(6 * 3_600_000))
        name = landing.batch_name(landed, b, plain)
        n_out = len(out)
        data = landing.encode(out, plain, cfg.gzip_level)
        del out
        if late:
            landing.hold_late(world.out, d.toordinal() + lag, d, name, data)
            world.dirt["late_files"] += 1
            world.dirt.setdefault("late_file_list", []).append(
                {"file": f"dt={d.isoformat()}/{name}", "lands_on": date.fromordinal(d.toordinal() + lag).isoformat()})
        else:
            landing.write_atomic(landing.partition(world.out, d) / name, data)
        world.dirt["plain_files"] += int(plain)
        files += 1
        lines += n_out
    landing.release_late(world.out, d.toordinal())
    return files, lines


# ---------------------------------------------------------------------------- runs
def run_days(world: World, days: int, kind: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    eng = open_engine(world.out / "shop.sqlite")
    first = world.next_day
    agg: Counter[str] = Counter()
    for _ in range(days):
        writer = DayWriter()
        stats = simulate_day(world, writer)
        with eng.begin() as conn:
            writer.flush(conn)
        agg.update(stats)
        world.next_day += 1
    eng.dispose()
    for k in ("events", "lines", "files", "orders", "sessions"):
        world.totals[k] = world.totals.get(k, 0) + int(agg[k])
    run = {"kind": kind, "first_day": date.fromordinal(first).isoformat(),
           "last_day": date.fromordinal(world.next_day - 1).isoformat(), "days": days,
           "events": int(agg["events"]), "lines": int(agg["lines"]), "orders": int(agg["orders"])}
    world.runs.append(run)
    world.save()
    write_ground_truth(world)
    return {
        "days": days, "start": run["first_day"], "end": run["last_day"],
        "events": int(agg["events"]), "lines_written": int(agg["lines"]), "sessions": int(agg["sessions"]),
        "orders": int(agg["orders"]), "status_changes": int(agg["status_changes"]),
        "customers": len(world.pop), "new_customers": int(agg["signups"]), "files": int(agg["files"]),
        "late_files_pending": len(landing.pending_files(world.out)),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def write_ground_truth(world: World) -> None:
    end = world.next_day - 1
    pop = world.pop
    cust = {}
    eng, churn, ch, created = pop.engagement.tolist(), pop.churn_day.tolist(), pop.channel.tolist(), pop.created_ms.tolist()
    for i in range(len(pop)):
        churned = churn[i] <= end
        cust[customer_id(i)] = {
            "churned": churned,
            "churn_date": date.fromordinal(churn[i]).isoformat() if churned else None,
            # the pre-drawn future, for evaluating churn predictions made at the end of the period
            "planned_churn_date": None if churned or churn[i] > end + 90 else date.fromordinal(churn[i]).isoformat(),
            "engagement": round(eng[i], 4), "engagement_level": engagement_level(eng[i]),
            "acquisition_channel": CHANNELS[ch[i]], "acquisition_channel_group": CHANNEL_GROUPS[CHANNELS[ch[i]]],
            "created_at": fmt_ms(created[i]),
        }
    dirt = dict(world.dirt)
    dirt["late_files_pending"] = landing.pending_files(world.out)
    truth = {
        "format": "nightjar-simulator/1",
        "config": {"seed": world.seed, "start": date.fromordinal(world.world_start).isoformat(),
                   "end": date.fromordinal(end).isoformat(), "days": end - world.world_start + 1,
                   "customers": world.target_customers, "rates": world.cfg.to_dict()},
        "incidents": world.incidents,
        "customers": cust,
        "churn_summary": {"customers": len(cust), "churned": sum(1 for c in cust.values() if c["churned"])},
        "dirt": dirt,
        "malformed_kinds": [{"variant": v, "reason": r} for v, r in MALFORMED_KINDS],
        "totals": world.totals,
        "runs": world.runs,
        "notes": ("Funnel rates are per-session conditional step rates; anonymous visitors cannot buy "
                  "(no guest checkout). churn_date is the first day without activity. engagement_level: "
                  "low < 0.7 <= medium <= 1.4 < high."),
    }
    (world.out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=False))


def fresh_output(out: Path) -> None:
    """Remove the simulator's own outputs (only those) before writing a new world."""
    for p in (landing.events_dir(out), out / landing.STATE_DIR):
        if p.exists():
            shutil.rmtree(p)
    for name in ("shop.sqlite", "shop.sqlite-journal", "ground_truth.json"):
        (out / name).unlink(missing_ok=True)


def default_start(days: int) -> date:
    today = datetime.now(timezone.utc).date()
    return date.fromordinal(today.toordinal() - days)


__all__ = ["World", "create_world", "run_days", "fresh_output", "default_start"]
