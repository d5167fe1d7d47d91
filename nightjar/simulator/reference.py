"""Static reference data: geography, devices, user agents, acquisition channels.

All strings here are embedded in JSON without escaping, so they must not contain quotes
or backslashes (checked at import time).
"""
from __future__ import annotations

import json

# (country, currency, locale, city, timezone, weight)
GEO: tuple[tuple[str, str, str, str, str, float], ...] = (
    ("US", "USD", "en-US", "New York", "America/New_York", 0.20),
    ("US", "USD", "en-US", "Chicago", "America/Chicago", 0.12),
    ("US", "USD", "en-US", "Los Angeles", "America/Los_Angeles", 0.13),
    ("US", "USD", "en-US", "Denver", "America/Denver", 0.05),
    ("CA", "USD", "en-CA", "Toronto", "America/Toronto", 0.05),
    ("GB", "GBP", "en-GB", "London", "Europe/London", 0.09),
    ("GB", "GBP", "en-GB", "Manchester", "Europe/London", 0.04),
    ("DE", "EUR", "de-DE", "Berlin", "Europe/Berlin", 0.07),
    ("DE", "EUR", "de-DE", "Munich", "Europe/Berlin", 0.04),
    ("FR", "EUR", "fr-FR", "Paris", "Europe/Paris", 0.07),
    ("NL", "EUR", "nl-NL", "Amsterdam", "Europe/Amsterdam", 0.05),
    ("ES", "EUR", "es-ES", "Madrid", "Europe/Madrid", 0.04),
    ("AU", "USD", "en-AU", "Sydney", "Australia/Sydney", 0.05),
)
GEO_WEIGHTS = tuple(g[5] for g in GEO)
# Prices are kept in USD in the catalogue and shown/charged in the visitor's currency.
FX_FROM_USD = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79}

# Local-time diurnal profile (hour 0..23): quiet at night, lunch bump, evening peak.
DIURNAL = (
    0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.6, 0.8, 0.9, 0.95, 1.0,
    1.15, 1.05, 0.95, 0.95, 1.0, 1.1, 1.3, 1.5, 1.6, 1.5, 1.1, 0.6,
)

# (user agent, screen width, screen height, weight)
HUMAN_DEVICES: tuple[tuple[str, int, int, float], ...] = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 1920, 1080, 0.25),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 1440, 900, 0.12),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 390, 844, 0.27),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", 412, 915, 0.2),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", 1536, 864, 0.06),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0", 1366, 768, 0.05),
    ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 820, 1180, 0.05),
)
HUMAN_DEVICE_WEIGHTS = tuple(d[3] for d in HUMAN_DEVICES)

# Every one matches the staging bot pattern (bot, crawler, spider, HeadlessChrome, curl, wget, python-requests).
BOT_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Wget/1.21.4",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "PriceCompare-Crawler/3.1 (+https://pricecompare.example/crawler)",
)

# Acquisition channels (names shared with tests/ml_synthetic.py) plus "direct" for returning
# visits and "paid_social" for the customers the marketing-spike campaign brings (never drawn:
# weight 0, so appending it leaves every random draw unchanged).
CHANNELS: tuple[str, ...] = ("organic", "paid_search", "social", "email", "referral", "direct", "paid_social")
PAID_SOCIAL = CHANNELS.index("paid_social")
# Latent engagement shift by acquisition channel: referred/email customers are stickier.
CHANNEL_ENGAGEMENT = (0.1, -0.1, -0.3, 0.3, 0.4, 0.0, -0.3)
ACQUISITION_WEIGHTS = (0.35, 0.25, 0.2, 0.1, 0.1, 0.0, 0.0)
RETURNING_WEIGHTS = (0.15, 0.08, 0.07, 0.2, 0.05, 0.45, 0.0)
WINDOW_SHOPPER_WEIGHTS = (0.3, 0.2, 0.25, 0.02, 0.08, 0.15, 0.0)
# The default channel grouping (dbt seed channel_rules, GA4's rules) of each channel's landing
# as campaign_json renders it: the ground truth that attribution is checked against.
CHANNEL_GROUPS = {"organic": "organic_search", "paid_search": "paid_search", "social": "organic_social",
                  "email": "email", "referral": "referral", "direct": "direct", "paid_social": "paid_social"}

SOCIAL = (("instagram", "https://l.instagram.com/"), ("facebook", "https://l.facebook.com/"), ("tiktok", "https://www.tiktok.com/"))
# Referring sites that are neither search engines nor social networks (GA4 counts reddit.com as social).
REFERRERS = ("https://outdoorgearlab.example/best-tents", "https://blog.example.org/gift-guide", "https://forum.example.net/t/buy-it-for-life")

SIGNUP_METHODS = ("email", "google", "apple")
SEARCH_TERMS = (
    "tent", "rain jacket", "headphones", "gift for dad", "running shoes", "lego", "yoga mat",
    "coffee grinder", "backpack", "sunscreen", "kindle", "desk lamp", "hiking boots", "board game",
    "wireless charger", "scarf", "water bottle", "christmas lights", "sleeping bag", "face cream",
)
FIRST_NAMES = ("alex", "sam", "maria", "jan", "lea", "tom", "nina", "omar", "yuki", "li", "emma", "noah", "sofia", "liam", "anna")
LAST_NAMES = ("smith", "mueller", "garcia", "martin", "rossi", "kim", "novak", "jones", "brown", "dubois", "jansen", "lopez")
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "web.de", "orange.fr")

SITE = "https://shop.nightjar.example"


def campaign_json(channel: int, day_label: str, variant: int) -> tuple[str, str]:
    """(campaign JSON object, referrer JSON value) of a session's landing."""
    name = CHANNELS[channel]
    if name == "organic":
        return '{"source":"google","medium":"organic","name":null}', '"https://www.google.com/"'
    if name == "paid_search":
        camp = ("search_brand", "search_generic")[variant % 2]
        return f'{{"source":"google","medium":"cpc","name":"{camp}"}}', '"https://www.google.com/"'
    if name == "social":
        src, ref = SOCIAL[variant % len(SOCIAL)]
        return f'{{"source":"{src}","medium":"social","name":"always_on_social"}}', f'"{ref}"'
    if name == "email":
        return f'{{"source":"newsletter","medium":"email","name":"newsletter_{day_label}"}}', "null"
    if name == "referral":
        ref = REFERRERS[variant % len(REFERRERS)]
        host = ref.split("/")[2]
        return f'{{"source":"{host}","medium":"referral","name":null}}', f'"{ref}"'
    return '{"source":null,"medium":null,"name":null}', "null"


def _check_safe() -> None:
    texts = [*BOT_AGENTS, *(d[0] for d in HUMAN_DEVICES), *(g[3] for g in GEO), *SEARCH_TERMS, *REFERRERS]
    for t in texts:
        assert json.dumps(t)[1:-1] == t, f"reference string needs JSON escaping: {t!r}"


_check_safe()
