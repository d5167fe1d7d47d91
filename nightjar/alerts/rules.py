"""Alert rules: the YAML file format, its validation, and checks against the warehouse.

The format is documented in ``nightjar/alerts/README.md`` and by the shipped
``default_rules.yml``. Every problem is reported as ``rule 'NAME': field 'FIELD': ...``
and all problems of a file are reported together.

Over 500 lines because it is the whole rule-file schema, one validator per rule type, kept
in one place so that every error message has the same shape.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from nightjar.alerts.config import KNOWN_CHANNELS

SEVERITIES = ("info", "warning", "critical")
RULE_TYPES = ("threshold", "change", "anomaly", "forecast_band")
NO_DATA_POLICIES = ("alert", "ok", "keep")
OPERATORS = ("<", "<=", ">", ">=", "==", "!=")
DIRECTIONS = ("up", "down", "both")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_TABLE = "marts.fct_daily_metrics"
# Schemas whose tables rules may watch: the business marts and the dq_* data-quality measures.
ALERTABLE_SCHEMAS = ("marts", "monitoring")
HOLIDAY_POLICIES = ("exclude", "skip", "ignore")
FORECAST_TABLE = "ml.demand_forecast"
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL",
                 "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
# always used with fullmatch: `$` of re.match would accept a trailing newline
_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SERIES_RE = re.compile(r"total|category:\S.*")  # the series ids of ml/forecast/series.py


class RuleFileError(ValueError):
    """The rule file is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str], source: str = "alert rules"):
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} problem(s):\n" + "\n".join(f"  - {e}" for e in errors))


# --- parameters of each condition type: name -> (python types, default, required) ----------
_PARAMS: dict[str, dict[str, tuple[tuple[type, ...], Any, bool]]] = {
    "threshold": {
        "op": ((str,), None, True),
        "value": ((int, float), None, True),
        "resolve_value": ((int, float), None, False),
        "holidays": ((str,), "ignore", False),
    },
    "change": {
        "compare_to": ((str,), "same_weekday_last_week", False),
        "weeks": ((int,), 1, False),
        "direction": ((str,), "down", False),
        "percent": ((int, float), None, True),
        "resolve_percent": ((int, float), None, False),
        "min_baseline": ((int, float), 0, False),
        "holidays": ((str,), "exclude", False),
    },
    "anomaly": {
        "window": ((int,), 56, False),
        "min_history": ((int,), 28, False),
        "sensitivity": ((int, float), 4.0, False),
        "resolve_sensitivity": ((int, float), None, False),
        "direction": ((str,), "both", False),
        "seasonality": ((str,), "weekday", False),
        "holidays": ((str,), "exclude", False),
    },
    "forecast_band": {
        "series": ((str,), "total", False),
        "forecast_metric": ((str,), None, False),
        "tolerance": ((int, float), 0.0, False),
        "direction": ((str,), "both", False),
        "holidays": ((str,), "ignore", False),
    },
}


@dataclass(frozen=True)
class Condition:
    type: str
    metric: str
    params: Mapping[str, Any]
    table: str = DEFAULT_TABLE
    expect: str = "breach"  # for `when` conditions: breach | normal

    def p(self, name: str) -> Any:
        return self.params.get(name)


@dataclass(frozen=True)
class MuteWindow:
    start: date | None = None
    end: date | None = None
    weekdays: tuple[int, ...] = ()
    reason: str = ""

    def covers(self, d: date) -> bool:
        if self.start is not None and d < self.start:
            return False
        if self.end is not None and d > self.end:
            return False
        if self.weekdays and d.weekday() not in self.weekdays:
            return False
        return True


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    condition: Condition
    when: tuple[Condition, ...]
    filter: Mapping[str, Any]
    severity: str
    owners: tuple[str, ...]
    channels: tuple[str, ...]
    for_: int = 1
    keep_firing_for: int = 0
    repeat_interval: int = 3  # metric days between reminders while firing; 0 = never
    cooldown: int = 0  # metric days between two firing notifications of the rule
    no_data: str = "keep"
    mute: tuple[MuteWindow, ...] = ()
    runbook: str = ""

    @property
    def metric(self) -> str:
        return self.condition.metric

    @property
    def type(self) -> str:
        return self.condition.type

    @property
    def table(self) -> str:
        return self.condition.table

    @property
    def category(self) -> str:
        """`data_quality` for rules on the monitoring.dq_* measures, else `business`."""
        return "data_quality" if self.table.startswith("monitoring.") else "business"

    @property
    def labels(self) -> dict[str, str]:
        labels = {"rule": self.name, "metric": self.metric, "table": self.table}
        labels.update({k: str(v) for k, v in sorted(self.filter.items())})
        if self.type == "forecast_band":
            labels["series"] = str(self.condition.p("series"))
        return labels

    @property
    def fingerprint(self) -> str:
        raw = json.dumps(self.labels, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def muted(self, d: date) -> MuteWindow | None:
        return next((m for m in self.mute if m.covers(d)), None)


@dataclass(frozen=True)
class FreshnessPolicy:
    name: str
    table: str
    date_column: str
    max_lag_days: int
    max_age_hours: float
    severity: str
    owners: tuple[str, ...]
    channels: tuple[str, ...]

    @property
    def labels(self) -> dict[str, str]:
        return {"rule": self.name, "table": self.table, "kind": "freshness"}

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.labels, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    tables: Mapping[str, str]  # allowed mart -> its date column
    freshness: tuple[FreshnessPolicy, ...] = ()
    run_failure_channels: tuple[str, ...] = ("log",)
    run_failure_severity: str = "critical"
    source: str = "alert rules"

    def get(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"no rule named {name!r} in {self.source} (have: {', '.join(r.name for r in self.rules)})")


# ---------------------------------------------------------------------------------------
class _Collector:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, where: str, fld: str, msg: str) -> None:
        self.errors.append(f"{where}: field '{fld}': {msg}")


def parse_days(value: Any) -> int:
    """`3`, `"3d"`, `"2w"` -> days. Rules are evaluated once per metric date, so days are the unit."""
    if isinstance(value, bool):
        raise ValueError("expected a number of days like 3 or '3d'")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", value)
        if m:
            n = int(m.group(1))
            return n * 7 if m.group(2) == "w" else n
    raise ValueError(f"expected a number of days like 3, '3d' or '1w', got {value!r}")


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _parse_mute(raw: Any, where: str, c: _Collector) -> tuple[MuteWindow, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.add(where, "mute", "must be a list of windows ({start, end} and/or {weekdays})")
        return ()
    out = []
    for i, m in enumerate(raw):
        fld = f"mute[{i}]"
        if not isinstance(m, dict):
            c.add(where, fld, "must be a mapping with start/end and/or weekdays")
            continue
        unknown = set(m) - {"start", "end", "weekdays", "reason"}
        if unknown:
            c.add(where, fld, f"unknown key(s) {', '.join(sorted(unknown))}")
        try:
            start = _as_date(m["start"]) if m.get("start") is not None else None
            end = _as_date(m["end"]) if m.get("end") is not None else None
        except ValueError:
            c.add(where, fld, "start/end must be dates YYYY-MM-DD")
            continue
        days = m.get("weekdays") or []
        if not isinstance(days, list) or any(str(d).lower()[:3] not in WEEKDAYS for d in days):
            c.add(where, fld, f"weekdays must be a list of {', '.join(WEEKDAYS)}")
            continue
        if start is None and end is None and not days:
            c.add(where, fld, "needs start/end or weekdays")
            continue
        if start and end and end < start:
            c.add(where, fld, "end is before start")
            continue
        out.append(MuteWindow(start, end, tuple(WEEKDAYS.index(str(d).lower()[:3]) for d in days),
                              str(m.get("reason") or "")))
    return tuple(out)


def _parse_condition(raw: Mapping[str, Any], where: str, prefix: str, c: _Collector,
                     tables: Mapping[str, str], default_table: str, allow_expect: bool,
                     extra_keys: frozenset[str] = frozenset()) -> Condition | None:
    ok = True
    ctype = raw.get("type")
    if ctype not in RULE_TYPES:
        c.add(where, f"{prefix}type", f"must be one of {', '.join(RULE_TYPES)} (got {ctype!r})")
        return None
    for u in sorted(set(raw) - set(_PARAMS[ctype]) - {"type", "metric", "table", "expect"} - extra_keys):
        c.add(where, f"{prefix}{u}", f"is not a parameter of type '{ctype}'")
        ok = False
    metric = raw.get("metric")
    if not isinstance(metric, str) or not _IDENT_RE.fullmatch(metric):
        c.add(where, f"{prefix}metric", f"must be a column name of the mart (got {metric!r})")
        ok = False
    table = raw.get("table", default_table)
    if table not in tables:
        c.add(where, f"{prefix}table", f"{table!r} is not an allowed mart (allowed: {', '.join(tables)})")
        ok = False
    params: dict[str, Any] = {}
    for pname, (types, default, required) in _PARAMS[ctype].items():
        if pname not in raw or raw[pname] is None:
            if required:
                c.add(where, f"{prefix}{pname}", f"is required for type '{ctype}'")
                ok = False
            params[pname] = default
            continue
        v = raw[pname]
        if isinstance(v, bool) or not isinstance(v, types):
            c.add(where, f"{prefix}{pname}", f"must be {'/'.join(t.__name__ for t in types)} (got {v!r})")
            ok = False
            continue
        params[pname] = v
    if not ok:
        return None
    # value checks
    def bad(p: str, msg: str) -> None:
        nonlocal ok
        c.add(where, f"{prefix}{p}", msg)
        ok = False

    if ctype == "threshold" and params["op"] not in OPERATORS:
        bad("op", f"must be one of {' '.join(OPERATORS)}")
    if ctype == "change":
        if params["compare_to"] not in ("same_weekday_last_week", "previous_day"):
            bad("compare_to", "must be same_weekday_last_week or previous_day")
        if not 1 <= params["weeks"] <= 8:
            bad("weeks", "must be between 1 and 8")
        if params["percent"] <= 0:
            bad("percent", "must be > 0 (a percentage, e.g. 30 for 30 %)")
        rp = params["resolve_percent"]
        if rp is not None and not 0 <= rp <= params["percent"]:
            bad("resolve_percent", "must be between 0 and 'percent'")
    if ctype in ("change", "anomaly", "forecast_band") and params["direction"] not in DIRECTIONS:
        bad("direction", f"must be one of {', '.join(DIRECTIONS)}")
    if ctype == "anomaly":
        if params["window"] < 14:
            bad("window", "must be at least 14 days")
        if not 7 <= params["min_history"] <= params["window"]:
            bad("min_history", "must be between 7 and 'window'")
        if params["sensitivity"] <= 0:
            bad("sensitivity", "must be > 0")
        rs = params["resolve_sensitivity"]
        if rs is not None and not 0 < rs <= params["sensitivity"]:
            bad("resolve_sensitivity", "must be > 0 and <= 'sensitivity'")
        if params["seasonality"] not in ("weekday", "none"):
            bad("seasonality", "must be weekday or none")
    if params["holidays"] not in HOLIDAY_POLICIES:
        bad("holidays", f"must be one of {', '.join(HOLIDAY_POLICIES)}")
    if params["holidays"] == "exclude" and ctype in ("threshold", "forecast_band"):
        bad("holidays", f"type '{ctype}' has no baseline to exclude holidays from (use skip or ignore)")
    if ctype == "forecast_band" and params["tolerance"] < 0:
        bad("tolerance", "must be >= 0 (a fraction of the band width)")
    if ctype == "forecast_band" and not _SERIES_RE.fullmatch(params["series"]):
        bad("series", f"must be 'total' or 'category:<name>' (got {params['series']!r})")
    expect = raw.get("expect", "breach")
    if not allow_expect and "expect" in raw:
        bad("expect", "is only allowed in 'when' conditions")
    elif expect not in ("breach", "normal"):
        bad("expect", "must be breach or normal")
    if not ok:
        return None
    if ctype == "forecast_band" and not params["forecast_metric"]:
        params["forecast_metric"] = metric
    return Condition(type=ctype, metric=metric, params=params, table=table, expect=expect)


_RULE_KEYS = {"name", "description", "metric", "table", "filter", "type", "severity", "owners", "channels", "for",
              "keep_firing_for", "repeat_interval", "cooldown", "no_data", "mute", "when", "runbook"}
_BEHAVIOUR_DEFAULTS = {"severity": "warning", "owners": ["team:analytics"], "channels": ["log"], "for": 1,
                       "keep_firing_for": 0, "repeat_interval": "3d", "cooldown": "0d", "no_data": "keep"}


def _str_list(v: Any) -> list[str] | None:
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and all(isinstance(x, str) and x for x in v):
        return list(v)
    return None


def parse_rules(doc: Any, source: str = "alert rules") -> RuleSet:
    c = _Collector()
    if not isinstance(doc, dict):
        raise RuleFileError(["the file must be a mapping with a 'rules' list"], source)
    unknown_top = set(doc) - {"version", "defaults", "tables", "rules", "freshness", "mute", "run_failure"}
    for k in sorted(unknown_top):
        c.errors.append(f"file: field '{k}': unknown top-level key")
    tables: dict[str, str] = {DEFAULT_TABLE: "metric_date"}
    raw_tables = doc.get("tables") or {}
    if not isinstance(raw_tables, dict):
        c.errors.append("file: field 'tables': must map 'marts.<table>' to {date_column: ...}")
        raw_tables = {}
    for tname, spec in raw_tables.items():
        col = (spec or {}).get("date_column") if isinstance(spec, dict) else None
        parts = str(tname).split(".")
        if len(parts) != 2 or parts[0] not in ALERTABLE_SCHEMAS or not _IDENT_RE.fullmatch(parts[1]):
            c.errors.append(f"file: field 'tables.{tname}': only tables of the schemas "
                            f"{', '.join(ALERTABLE_SCHEMAS)} can be alerted on")
        elif not isinstance(col, str) or not _IDENT_RE.fullmatch(col):
            c.errors.append(f"file: field 'tables.{tname}.date_column': must be a column name")
        else:
            tables[str(tname)] = col
    defaults = dict(_BEHAVIOUR_DEFAULTS)
    if isinstance(doc.get("defaults"), dict):
        for k, v in doc["defaults"].items():
            if k not in _BEHAVIOUR_DEFAULTS:
                c.errors.append(f"defaults: field '{k}': not a behaviour setting ({', '.join(_BEHAVIOUR_DEFAULTS)})")
            else:
                defaults[k] = v
    global_mute = _parse_mute(doc.get("mute"), "file", c)

    rules: list[Rule] = []
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        c.errors.append("file: field 'rules': must be a non-empty list of rules")
        raw_rules = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            c.errors.append(f"rules[{i}]: must be a mapping")
            continue
        name = raw.get("name")
        where = f"rule '{name}'" if isinstance(name, str) and name else f"rules[{i}]"
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            c.add(where, "name", "must be lower_snake_case, starting with a letter (max 63 chars)")
        elif name in seen:
            c.add(where, "name", "is used by more than one rule")
        seen.add(str(name))
        for k in sorted(set(raw) - _RULE_KEYS - set().union(*(set(p) for p in _PARAMS.values()))):
            c.add(where, str(k), "unknown field")
        errors_before = len(c.errors)
        cond = _parse_condition(raw, where, "", c, tables, DEFAULT_TABLE, allow_expect=False,
                                extra_keys=frozenset(_RULE_KEYS))
        merged = {**defaults, **{k: v for k, v in raw.items() if k in _BEHAVIOUR_DEFAULTS}}
        severity = merged["severity"]
        if severity not in SEVERITIES:
            c.add(where, "severity", f"must be one of {', '.join(SEVERITIES)} (got {severity!r})")
        owners = _str_list(merged["owners"])
        if owners is None:
            c.add(where, "owners", "must be a list of owner strings (e.g. team:commerce, someone@shop.com)")
        channels = _str_list(merged["channels"])
        if channels is None or not channels:
            c.add(where, "channels", f"must be a non-empty list of {', '.join(KNOWN_CHANNELS)}")
        elif any(ch not in KNOWN_CHANNELS for ch in channels):
            bad = [ch for ch in channels if ch not in KNOWN_CHANNELS]
            c.add(where, "channels", f"unknown channel(s) {', '.join(bad)} (known: {', '.join(KNOWN_CHANNELS)})")
        ints: dict[str, int] = {}
        for k in ("for", "keep_firing_for"):
            v = merged[k]
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if k == "for" else 0):
                c.add(where, k, f"must be an integer >= {1 if k == 'for' else 0} (evaluations)")
            else:
                ints[k] = v
        for k in ("repeat_interval", "cooldown"):
            try:
                ints[k] = parse_days(merged[k])
            except ValueError as exc:
                c.add(where, k, str(exc))
        if merged["no_data"] not in NO_DATA_POLICIES:
            c.add(where, "no_data", f"must be one of {', '.join(NO_DATA_POLICIES)}")
        flt = raw.get("filter") or {}
        if not isinstance(flt, dict) or any(not _IDENT_RE.fullmatch(str(k))
                                            or not isinstance(v, (str, int, float, bool, date)) for k, v in flt.items()):
            c.add(where, "filter", "must map dimension columns to a single string/number/date value")
            flt = {}
        when: list[Condition] = []
        raw_when = raw.get("when") or []
        if not isinstance(raw_when, list):
            c.add(where, "when", "must be a list of conditions")
            raw_when = []
        for j, w in enumerate(raw_when):
            if not isinstance(w, dict):
                c.add(where, f"when[{j}]", "must be a condition mapping (metric, type, ...)")
                continue
            wc = _parse_condition(w, where, f"when[{j}].", c, tables, cond.table if cond else DEFAULT_TABLE,
                                  allow_expect=True)
            if wc is not None:
                if wc.table != (cond.table if cond else DEFAULT_TABLE):
                    c.add(where, f"when[{j}].table", "must be the rule's table")
                when.append(wc)
        mute = _parse_mute(raw.get("mute"), where, c) + global_mute
        if len(c.errors) > errors_before or cond is None:
            continue
        rules.append(Rule(
            name=name, description=str(raw.get("description") or ""), condition=cond, when=tuple(when),
            filter=dict(flt), severity=severity, owners=tuple(owners or ()), channels=tuple(channels or ()),
            for_=ints["for"], keep_firing_for=ints["keep_firing_for"], repeat_interval=ints["repeat_interval"],
            cooldown=ints["cooldown"], no_data=merged["no_data"], mute=mute, runbook=str(raw.get("runbook") or ""),
        ))

    freshness: list[FreshnessPolicy] = []
    for i, raw in enumerate(doc.get("freshness") or []):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"freshness '{name}'" if name else f"freshness[{i}]"
        if not isinstance(raw, dict) or not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            c.add(where, "name", "must be lower_snake_case")
            continue
        table = raw.get("table", DEFAULT_TABLE)
        if table not in tables:
            c.add(where, "table", f"{table!r} is not an allowed mart")
            continue
        lag, age = raw.get("max_lag_days", 2), raw.get("max_age_hours", 30)
        if not isinstance(lag, int) or isinstance(lag, bool) or lag < 0:
            c.add(where, "max_lag_days", "must be an integer >= 0")
            continue
        if not isinstance(age, (int, float)) or isinstance(age, bool) or age <= 0:
            c.add(where, "max_age_hours", "must be a number > 0")
            continue
        sev = raw.get("severity", "critical")
        chans = _str_list(raw.get("channels", defaults["channels"])) or []
        if sev not in SEVERITIES:
            c.add(where, "severity", f"must be one of {', '.join(SEVERITIES)}")
            continue
        if not chans or any(ch not in KNOWN_CHANNELS for ch in chans):
            c.add(where, "channels", f"must be a non-empty list of {', '.join(KNOWN_CHANNELS)}")
            continue
        freshness.append(FreshnessPolicy(name, table, tables[table], lag, float(age), sev,
                                         tuple(_str_list(raw.get("owners", defaults["owners"])) or ()), tuple(chans)))
    rf = doc.get("run_failure") or {}
    rf_channels = tuple(_str_list(rf.get("channels", defaults["channels"])) or ())
    if not rf_channels or any(ch not in KNOWN_CHANNELS for ch in rf_channels):
        c.errors.append(f"run_failure: field 'channels': must be a non-empty list of {', '.join(KNOWN_CHANNELS)}")
    rf_sev = rf.get("severity", "critical")
    if rf_sev not in SEVERITIES:
        c.errors.append(f"run_failure: field 'severity': must be one of {', '.join(SEVERITIES)}")
    if c.errors:
        raise RuleFileError(c.errors, source)
    return RuleSet(rules=tuple(rules), tables=tables, freshness=tuple(freshness), run_failure_channels=rf_channels,
                   run_failure_severity=rf_sev, source=source)


def load_rules(path: str | Path) -> RuleSet:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise RuleFileError([f"cannot read the rule file: {exc.strerror}"], str(p)) from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleFileError([f"not valid YAML: {exc}"], str(p)) from exc
    return parse_rules(doc, str(p))


# --- checks against the warehouse --------------------------------------------------------
def table_columns(con, table: str) -> dict[str, str]:
    """{column: data type} of `schema.table` (empty when the table does not exist)."""
    schema, name = table.split(".", 1)
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def _is_numeric(dtype: str) -> bool:
    return dtype.upper().split("(")[0] in NUMERIC_TYPES


def check_against_warehouse(ruleset: RuleSet, con) -> list[str]:
    """Problems of rules whose metric/filter/date columns do not exist in the warehouse (empty = fine).

    This is what makes metric names safe to use as identifiers: evaluation only ever
    quotes names that this check found in ``information_schema``.
    """
    errors: list[str] = []
    cache: dict[str, dict[str, str]] = {}
    forecast = _forecast_series(con) if any(
        c.type == "forecast_band" for r in ruleset.rules for c in (r.condition, *r.when)) else None
    for t in ruleset.tables:
        cache[t] = table_columns(con, t)
    for rule in ruleset.rules:
        where = f"rule '{rule.name}'"
        cols = cache[rule.table]
        if not cols and rule.category == "data_quality":
            continue  # the dq_* measures are not built yet: the engine skips the rule (measures_missing)
        if not cols:
            errors.append(f"{where}: field 'table': {rule.table} does not exist in the warehouse")
            continue
        date_col = ruleset.tables[rule.table]
        if date_col not in cols:
            errors.append(f"{where}: field 'table': {rule.table} has no date column {date_col!r}")
        for prefix, cond in [("", rule.condition)] + [(f"when[{j}].", w) for j, w in enumerate(rule.when)]:
            dtype = cols.get(cond.metric)
            if dtype is None:
                errors.append(f"{where}: field '{prefix}metric': {cond.metric!r} is not a column of {rule.table} "
                              f"(numeric columns: {', '.join(k for k, v in cols.items() if _is_numeric(v))})")
            elif not _is_numeric(dtype):
                errors.append(f"{where}: field '{prefix}metric': {cond.metric!r} is {dtype}, not numeric")
        for k in rule.filter:
            if k not in cols:
                errors.append(f"{where}: field 'filter': {k!r} is not a column of {rule.table}")
            elif _is_numeric(cols[k]) and k in {rule.metric}:
                errors.append(f"{where}: field 'filter': cannot filter on the metric itself")
            elif (problem := _filter_value_problem(cols[k], rule.filter[k])) is not None:
                errors.append(f"{where}: field 'filter': {k!r} is a {cols[k]} column: {problem}")
        for prefix, cond in [("", rule.condition)] + [(f"when[{j}].", w) for j, w in enumerate(rule.when)]:
            if cond.type == "forecast_band" and forecast is not None:
                series, fmetric = cond.p("series"), cond.p("forecast_metric") or cond.metric
                if (series, fmetric) not in forecast:
                    known = ", ".join(f"{s}/{m}" for s, m in sorted(forecast)) or "none"
                    field_name = "series" if series not in {s for s, _ in forecast} else "forecast_metric"
                    errors.append(f"{where}: field '{prefix}{field_name}': {FORECAST_TABLE} has no forecast for "
                                  f"series {series!r}, metric {fmetric!r} (published: {known})")
    return errors


def measures_missing(con, table: str) -> bool:
    """True for a monitoring.* table that does not exist (yet): its rules and freshness
    policies are skipped rather than failing every other rule of the night."""
    return table.startswith("monitoring.") and not table_columns(con, table)


def _forecast_series(con) -> set[tuple[str, str]] | None:
    """(series_id, metric) pairs of the published forecast; None before the table exists."""
    if not table_columns(con, FORECAST_TABLE):
        return None
    return {(s, m) for s, m in con.execute(f"select distinct series_id, metric from {FORECAST_TABLE}").fetchall()}


def _filter_value_problem(dtype: str, value: Any) -> str | None:
    """Why `value` cannot be compared with a column of type `dtype` (None: it can)."""
    base = dtype.upper().split("(")[0]
    if _is_numeric(dtype):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"the value must be a number, not {value!r}"
    if base == "BOOLEAN":
        return None if isinstance(value, bool) else f"the value must be true or false, not {value!r}"
    if base == "DATE":
        if isinstance(value, date) and not isinstance(value, datetime):
            return None
        if isinstance(value, str):
            try:
                date.fromisoformat(value)
                return None
            except ValueError:
                pass
        return f"the value must be a date (YYYY-MM-DD), not {value!r}"
    if base.startswith("TIMESTAMP"):
        if isinstance(value, date):
            return None
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value)
                return None
            except ValueError:
                pass
        return f"the value must be a timestamp (YYYY-MM-DD[ HH:MM:SS]), not {value!r}"
    if base in ("VARCHAR", "TEXT", "STRING"):
        return None if isinstance(value, str) else f"the value must be a string (quote it), not {value!r}"
    return "filtering on this column type is not supported"
