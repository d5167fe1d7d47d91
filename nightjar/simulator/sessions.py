"""Turning one planned session into event lines: the hot loop of the simulator.

A session is planned by the engine (who, when, from which channel, how deep into the
funnel); here it becomes a sequence of events with realistic gaps, identity changes
(anonymous browsing, then log-in or sign-up) and a purchase that becomes an order.

Lines are assembled from pre-built JSON fragments rather than dicts + json.dumps: all
strings come from reference tables that need no escaping, and this is ~3x faster.
An event is stored as (received_ms, head, tail) with the line being
head + received_at + tail, so that a duplicate delivery can get a later received_at
without re-rendering.
"""
from __future__ import annotations

import random
from math import log as _log
from dataclasses import dataclass, field

from .catalog import Catalog
from .config import SimConfig
from .reference import (
    BOT_AGENTS, FX_FROM_USD, GEO, HUMAN_DEVICES, SEARCH_TERMS, SIGNUP_METHODS, SITE, campaign_json,
)
from .seasonality import CATEGORIES
from .timefmt import fmt_ms, tz_offset

# Identity modes of a session.
KNOWN, LOGIN, SIGNUP, ANON = 0, 1, 2, 3

_NAME_VARIANTS = {
    "page_viewed": ("Page Viewed", "page-viewed", " page_viewed ", "PAGE_VIEWED"),
    "product_viewed": ("Product Viewed", "product-viewed", "Product_Viewed"),
    "product_added_to_cart": ("Product Added To Cart", "product-added-to-cart"),
    "search_performed": ("Search Performed", "search-performed"),
}


@dataclass
class Purchase:
    order_id: str
    customer_id: str
    created_ms: int
    currency: str
    total: float
    items: list[tuple[int, int, float]]  # (product index, quantity, unit price in currency)


@dataclass
class SessionPlan:
    start_ms: int
    anon_id: str
    geo: int
    device: int
    channel: int
    stage: int  # 0 landing only .. 4 purchase
    mode: int = ANON
    user_id: str | None = None  # known from the start (KNOWN) or after LOGIN/SIGNUP
    campaign: tuple[str, str] | None = None  # override (campaign JSON, referrer JSON)


@dataclass
class DayRenderer:
    seed: int
    day: int  # ordinal
    cfg: SimConfig
    catalog: Catalog
    rng: random.Random
    cum_weights: list[float]
    next_order: int
    out: list[tuple[int, str, str]] = field(default_factory=list)
    purchases: list[Purchase] = field(default_factory=list)
    signups: list[tuple[str, int, str]] = field(default_factory=list)  # (customer_id, ms, method)
    nonnormal: int = 0  # events sent with a non-normalised name
    _ctx_cache: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = self.catalog.names
        self.pids = self.catalog.product_ids
        self.cats = [CATEGORIES[c] for c in self.catalog.category.tolist()]
        self.prices = self.catalog.price.tolist()
        self.n_products = len(self.pids)
        from datetime import date
        iso = date.fromordinal(self.day).isocalendar()
        self.week_label = f"{iso[0]}_w{iso[1]:02d}"

    # -- helpers -------------------------------------------------------------------------------
    def _id_base(self) -> str:
        """A UUID-shaped prefix per session; events append a 4-hex counter (one RNG call per
        session instead of per event, and still globally unique)."""
        h = "%028x" % self.rng.getrandbits(112)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:28]}"

    def _ctx(self, plan: SessionPlan, variant: int, bot_agent: int = -1) -> tuple[str, str]:
        """(context JSON after "page", referrer JSON of the landing) — few distinct values, cached."""
        key = (plan.geo, plan.device, plan.channel, variant, bot_agent, plan.campaign)
        hit = self._ctx_cache.get(key)
        if hit is None:
            country, _cur, locale, city, tz, _w = GEO[plan.geo]
            if bot_agent >= 0:
                ua, w, h = BOT_AGENTS[bot_agent], 1280, 800
            else:
                ua, w, h, _ = HUMAN_DEVICES[plan.device]
            camp, ref = plan.campaign or campaign_json(plan.channel, self.week_label, variant)
            tail = (f'"campaign":{camp},"user_agent":"{ua}","locale":"{locale}","timezone":"{tz}",'
                    f'"screen":{{"width":{w},"height":{h}}},"geo":{{"country":"{country}","city":"{city}"}}}}}}')
            hit = self._ctx_cache[key] = (tail, ref)
        return hit

    def _category_page(self) -> tuple[str, str]:
        c = CATEGORIES[self.rng.randrange(len(CATEGORIES))]
        return (f"/c/{c}", f"{c.replace('_', ' ').title()} | Nightjar Shop")

    # -- sessions ------------------------------------------------------------------------------
    def human_session(self, plan: SessionPlan) -> int:
        """Render one human session; returns the number of event lines."""
        rng = self.rng
        rand = rng.random
        cfg = self.cfg
        _country, currency, _locale, _city, tz, _w = GEO[plan.geo]
        fx = FX_FROM_USD[currency]
        variant = rng.getrandbits(2)
        ctx_tail, referrer = self._ctx(plan, variant)

        # 1. the steps of the session, as (kind, payload)
        stage = plan.stage
        steps: list[tuple[str, object]] = []
        r = rand()
        if plan.channel in (1, 2) and r < 0.6:  # paid and social traffic land on a product page
            steps.append(("product_page", rng.choices(range(self.n_products), cum_weights=self.cum_weights)[0]))
        elif r < 0.75:
            steps.append(("page", ("/", "Nightjar Shop")))
        else:
            steps.append(("page", self._category_page()))
        for _ in range(min(int(-_log(1.0 - rand()) * 2.0), 10)):
            steps.append(("page", self._category_page()))
        if rand() < 0.25:
            steps.append(("search", SEARCH_TERMS[rng.randrange(len(SEARCH_TERMS))]))
        viewed: list[int] = []
        if stage >= 1:
            n_views = 1 + min(int(-_log(1.0 - rand()) * 2.2), 14)
            viewed = rng.choices(range(self.n_products), cum_weights=self.cum_weights, k=n_views)
            for p in viewed:
                steps.append(("product_page", p))
                steps.append(("product", p))
        cart: list[tuple[int, int, float]] = []
        if stage >= 2:
            n_cart = 1 + (rand() < 0.3) + (rand() < 0.1)
            for p in rng.sample(viewed, min(n_cart, len(viewed))):
                qty = 1 if rand() < 0.8 else (2 if rand() < 0.75 else 3)
                unit = round(self.prices[p] * fx, 2)
                cart.append((p, qty, unit))
                steps.append(("cart", (p, qty, unit)))
        if stage >= 3:
            steps.append(("page", ("/cart", "Your cart | Nightjar Shop")))
            steps.append(("checkout", None))
        if stage >= 4:
            steps.append(("purchase", None))
            steps.append(("page", ("/order/confirmation", "Thank you | Nightjar Shop")))
        elif rand() < 0.3:
            steps.append(("page", ("/", "Nightjar Shop")))

        # 2. where the visitor identifies: before checkout if they reach it, else maybe anywhere
        if plan.mode == LOGIN or plan.mode == SIGNUP:
            ident_at = -1
            if stage >= 3:  # the checkout needs an account: identify just before "/cart"
                ident_at = next(i for i, s in enumerate(steps) if s[0] == "page" and s[1][0] == "/cart")  # type: ignore[index]
            elif plan.mode == SIGNUP or rand() < 0.4:
                ident_at = 1 + rng.randrange(len(steps))
            if ident_at >= 0:
                if plan.mode == SIGNUP:
                    method = SIGNUP_METHODS[rng.randrange(3)]
                    ins = [("page", ("/signup", "Create account | Nightjar Shop")), ("signup", method), ("identify", None)]
                else:
                    ins = [("page", ("/login", "Sign in | Nightjar Shop")), ("identify", None)]
                steps[ident_at:ident_at] = ins

        # 3. timing, identity and rendering
        uid_json = f'"{plan.user_id}"' if plan.mode == KNOWN else "null"
        id_base = self._id_base()
        session_part = f',"session_id":"s_{id_base[:8]}{id_base[9:13]}","properties":'
        anon_part = f'","anonymous_id":"{plan.anon_id}","user_id":'
        if rand() < cfg.non_utc_offset_rate:
            off_ms, suffix = tz_offset(tz, self.day)
        else:
            off_ms, suffix = 0, "Z"
        if rand() < cfg.clock_skew_rate:
            off_ms += int((rand() - 0.3) * 1_200_000)  # device clock off by up to ~10 minutes
        nonnormal = cfg.nonnormal_name_rate
        long_gap = cfg.midnight_gap_rate
        out_append = self.out.append
        pids, names, cats, prices = self.pids, self.names, self.cats, self.prices
        t = plan.start_ms
        prev_url = referrer
        n = 0
        cart_value = sum(q * u for _p, q, u in cart)
        for kind, payload in steps:
            if kind == "page":
                name, props = "page_viewed", "{}"
                path, title = payload  # type: ignore[misc]
            elif kind == "product":
                p = payload  # type: ignore[assignment]
                name = "product_viewed"
                props = (f'{{"product_id":"{pids[p]}","category":"{cats[p]}",'
                         f'"price":{prices[p] * fx:.2f},"currency":"{currency}"}}')
                path, title = f"/p/{pids[p]}", names[p]
            elif kind == "product_page":
                name, props = "page_viewed", "{}"
                path, title = f"/p/{pids[payload]}", names[payload]  # type: ignore[index]
            elif kind == "search":
                name, props = "search_performed", f'{{"query":"{payload}"}}'
                path, title = f"/search?q={str(payload).replace(' ', '+')}", "Search | Nightjar Shop"
            elif kind == "cart":
                p, qty, unit = payload  # type: ignore[misc]
                name = "product_added_to_cart"
                props = (f'{{"product_id":"{pids[p]}","quantity":{qty},"price":{unit:.2f},'
                         f'"currency":"{currency}"}}')
                path, title = f"/p/{pids[p]}", names[p]
            elif kind == "checkout":
                name, props = "checkout_started", f'{{"cart_value":{cart_value:.2f},"currency":"{currency}"}}'
                path, title = "/checkout", "Checkout | Nightjar Shop"
            elif kind == "purchase":
                order_id = f"o_{self.next_order:08d}"
                self.next_order += 1
                name = "purchase_completed"
                props = f'{{"order_id":"{order_id}","revenue":{cart_value:.2f},"currency":"{currency}"}}'
                path, title = "/checkout/pay", "Checkout | Nightjar Shop"
                self.purchases.append(Purchase(order_id, plan.user_id or "", t, currency, round(cart_value, 2), cart))
            elif kind == "signup":
                uid_json = f'"{plan.user_id}"'
                name, props = "user_signed_up", f'{{"method":"{payload}"}}'
                path, title = "/signup", "Create account | Nightjar Shop"
                self.signups.append((plan.user_id or "", t, str(payload)))
            else:  # identify
                uid_json = f'"{plan.user_id}"'
                name, props = "user_identified", "{}"
                path, title = "/account", "Your account | Nightjar Shop"
            if nonnormal and rand() < nonnormal and name in _NAME_VARIANTS:
                variants = _NAME_VARIANTS[name]
                name = variants[rng.randrange(len(variants))]
                self.nonnormal += 1
            url = f'"{SITE}{path}"'
            out_append((
                t + 40 + int(-_log(1.0 - rand()) * 250.0),  # received ~0.3 s later
                f'{{"event_id":"{id_base}{n:04x}","event_name":"{name}","timestamp":"{fmt_ms(t, suffix, off_ms)}","received_at":"',
                f'{anon_part}{uid_json}{session_part}{props},"context":{{"page":{{"url":{url},"path":"{path}",'
                f'"referrer":{prev_url},"title":"{title}"}},{ctx_tail}',
            ))
            prev_url = url
            n += 1
            # gap to the next event: seconds..minutes, rarely a long pause
            g = rand()
            if g < long_gap:
                t += 1_800_000 + rng.randrange(1_800_000)  # > 30 min: splits the session
            elif g < 0.02:
                t += 300_000 + rng.randrange(1_200_000)  # a coffee break inside the session
            else:
                t += 1_000 + int(-_log(1.0 - rand()) * 30_000.0)
        return n

    def bot_session(self, start_ms: int, geo: int, agent: int, max_events: int) -> int:
        """Crawlers: many fast page/product views, no identity, no funnel beyond viewing."""
        rng = self.rng
        plan = SessionPlan(start_ms, "a_" + "%020x" % rng.getrandbits(80), geo, 0, 5, 1)
        ctx_tail = self._ctx(plan, 0, bot_agent=agent)[0]
        id_base = self._id_base()
        # curl-ish clients do not keep a session id
        session_json = "null" if agent in (4, 5, 6) else f'"s_{id_base[:8]}{id_base[9:13]}"'
        n = max(1, min(5 + int(rng.expovariate(1 / 25)), max_events))
        t = start_ms
        out = self.out
        for k in range(n):
            if rng.random() < 0.6:
                p = rng.randrange(self.n_products)
                name, path, title = "product_viewed", f"/p/{self.pids[p]}", self.names[p]
                props = f'{{"product_id":"{self.pids[p]}","category":"{self.cats[p]}","price":{self.prices[p]:.2f},"currency":"USD"}}'
            else:
                c = CATEGORIES[rng.randrange(len(CATEGORIES))]
                name, path, title, props = "page_viewed", f"/c/{c}", f"{c} | Nightjar Shop", "{}"
            head = (f'{{"event_id":"{id_base}{k:04x}","event_name":"{name}",'
                    f'"timestamp":"{fmt_ms(t)}","received_at":"')
            tail = (f'","anonymous_id":"{plan.anon_id}","user_id":null,"session_id":{session_json},'
                    f'"properties":{props},"context":{{"page":{{"url":"{SITE}{path}","path":"{path}",'
                    f'"referrer":null,"title":"{title}"}},{ctx_tail}')
            out.append((t + 20 + rng.randrange(200), head, tail))
            t += 300 + rng.randrange(2_500)
        return n
