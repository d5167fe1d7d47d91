"""The product catalogue (~200 products in categories) and its slow price drift."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rng import np_stream
from .seasonality import CATEGORIES, CATEGORY_MONTHLY

_BASE_PRICE = {"outdoor": 80, "apparel": 45, "electronics": 160, "home": 55, "beauty": 24,
               "toys_gifts": 32, "books": 17, "sports": 50}
_ADJ = ("Alpine", "Classic", "Urban", "Compact", "Premium", "Everyday", "Nordic", "Solar", "Vintage",
        "Trail", "Cozy", "Smart", "Pro", "Mini", "Deluxe", "Eco")
_NOUN = {
    "outdoor": ("Tent", "Sleeping Bag", "Camping Stove", "Headlamp", "Trekking Poles", "Hammock"),
    "apparel": ("Rain Jacket", "Wool Sweater", "Denim Jeans", "Scarf", "Fleece", "Beanie"),
    "electronics": ("Headphones", "Wireless Charger", "E-Reader", "Smart Speaker", "Action Camera", "Power Bank"),
    "home": ("Desk Lamp", "Coffee Grinder", "Throw Blanket", "Plant Pot", "Knife Set", "Candle"),
    "beauty": ("Face Cream", "Sunscreen", "Shampoo", "Lip Balm", "Perfume", "Hand Soap"),
    "toys_gifts": ("Board Game", "Puzzle", "Building Set", "Plush Owl", "Gift Box", "Kite"),
    "books": ("Cookbook", "Travel Guide", "Novel", "Field Guide", "Notebook", "Atlas"),
    "sports": ("Yoga Mat", "Running Shoes", "Water Bottle", "Dumbbells", "Jump Rope", "Gym Bag"),
}


@dataclass
class Catalog:
    product_ids: list[str]
    names: list[str]
    category: np.ndarray  # int index into CATEGORIES
    price: np.ndarray  # USD, 2 decimals
    updated_ms: np.ndarray  # int64 epoch ms
    popularity: np.ndarray  # Zipf-like base weight

    @classmethod
    def generate(cls, seed: int, n: int, created_ms: int) -> "Catalog":
        rng = np_stream(seed, 0, "catalog")
        cat = np.arange(n) % len(CATEGORIES)
        rng.shuffle(cat)
        base = np.array([_BASE_PRICE[CATEGORIES[c]] for c in cat], dtype=float)
        price = np.round(np.maximum(base * rng.lognormal(0.0, 0.45, n), 3.0)) - 0.01
        popularity = 1.0 / (1.0 + rng.permutation(n)) ** 0.8
        names = []
        for i, c in enumerate(cat):
            nouns = _NOUN[CATEGORIES[c]]
            names.append(f"{_ADJ[int(rng.integers(len(_ADJ)))]} {nouns[int(rng.integers(len(nouns)))]} {i + 1}")
        updated = created_ms - rng.integers(0, 90 * 86_400_000, n)
        return cls([f"p_{i + 1:04d}" for i in range(n)], names, cat.astype(np.int64), price, updated.astype(np.int64), popularity)

    def day_weights(self, month: int) -> list[float]:
        """Cumulative product-choice weights for a month (popularity x category season)."""
        season = np.array([CATEGORY_MONTHLY[c][month - 1] for c in CATEGORIES])
        w = self.popularity * season[self.category]
        return np.cumsum(w).tolist()

    def drift_prices(self, seed: int, day: int, day_ms: int, rate: float) -> list[int]:
        """Occasional price changes (sales, supplier increases); returns changed product indices."""
        rng = np_stream(seed, day, "prices")
        changed = np.flatnonzero(rng.random(len(self.price)) < rate)
        if changed.size:
            factor = rng.choice([0.8, 0.9, 1.05, 1.1, 1.15], size=changed.size)
            self.price[changed] = np.maximum(np.round(self.price[changed] * factor) - 0.01, 0.99)
            self.updated_ms[changed] = day_ms + rng.integers(0, 86_400_000, changed.size)
        return changed.tolist()

    def to_state(self) -> dict:
        return {"product_ids": self.product_ids, "names": self.names, "category": self.category.tolist(),
                "price": self.price.tolist(), "updated_ms": self.updated_ms.tolist(),
                "popularity": self.popularity.tolist()}

    @classmethod
    def from_state(cls, d: dict) -> "Catalog":
        return cls(d["product_ids"], d["names"], np.array(d["category"], dtype=np.int64),
                   np.array(d["price"], dtype=float), np.array(d["updated_ms"], dtype=np.int64),
                   np.array(d["popularity"], dtype=float))
