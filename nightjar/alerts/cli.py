"""`nightjar alerts ...`: validate rules, send a test notification, backtest rules on the marts."""
from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timezone
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("alerts", help="alert rules: validate, test notifications, backtest")
    sub = p.add_subparsers(dest="alerts_command", required=True)

    v = sub.add_parser("validate", help="validate the rule file (and its metrics against the warehouse, if present)")
    v.add_argument("--rules", help="rule file (default: NIGHTJAR_ALERTS_FILE or the shipped default)")
    v.set_defaults(func=_cmd_validate)

    t = sub.add_parser("test", help="send a sample notification of RULE to its channels")
    t.add_argument("rule")
    t.add_argument("--rules", help="rule file")
    t.add_argument("--channel", action="append", help="only this channel (repeatable)")
    t.set_defaults(func=_cmd_test)

    b = sub.add_parser("backtest", help="show which rules would have fired over the mart history (writes nothing)")
    b.add_argument("--days", type=int, default=90, help="metric dates to replay (default 90)")
    b.add_argument("--rules", help="rule file")
    b.add_argument("--truth", help="score against this simulator ground_truth.json (default: the data dir's, "
                                   "if there is one)")
    b.add_argument("--tolerance-days", type=int, default=1,
                   help="an incident counts as detected when a rule fires on its date or up to N days later (default 1)")
    b.set_defaults(func=_cmd_backtest)


def _ruleset(args):
    from nightjar.alerts.rules import load_rules
    from nightjar.settings import get_settings

    return load_rules(Path(args.rules) if args.rules else get_settings().alerts_file)


def _valid_ruleset(args):
    """The rule file, or None after printing why it (or the holiday calendar) is invalid."""
    from nightjar.alerts.holiday_calendar import default_calendar
    from nightjar.alerts.rules import RuleFileError

    try:
        default_calendar()
        return _ruleset(args)
    except (RuleFileError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return None


def _read_warehouse(settings, purpose: str):
    from nightjar.marts_reader import connect

    return connect(settings, read_only=True, purpose=purpose)


def _cmd_validate(args: argparse.Namespace) -> int:
    from nightjar.alerts.rules import check_against_warehouse
    from nightjar.settings import get_settings

    ruleset = _valid_ruleset(args)
    if ruleset is None:
        return 2
    print(f"{ruleset.source}: {len(ruleset.rules)} rules, {len(ruleset.freshness)} freshness policies - valid")
    settings = get_settings()
    wh = settings.warehouse
    if wh.exists():
        with _read_warehouse(settings, "alerts check") as con:
            problems = check_against_warehouse(ruleset, con)
        if problems:
            print("\n".join(f"  - {p}" for p in problems), file=sys.stderr)
            return 2
        print(f"metrics checked against {wh}")
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    from nightjar.alerts.channels import build_senders
    from nightjar.alerts.config import load_config
    from nightjar.alerts.evaluate import asset_url

    ruleset = _ruleset(args)
    try:
        rule = ruleset.get(args.rule)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    config = load_config()
    senders = build_senders(config)
    now = datetime.now(timezone.utc)
    key = f"test:{rule.fingerprint}:{now.strftime('%Y%m%dT%H%M%S')}"
    payload = {"kind": "test", "rule": rule.name, "description": f"TEST - {rule.description}", "type": rule.type,
               "severity": rule.severity, "fingerprint": rule.fingerprint, "episode": 0, "labels": rule.labels,
               "metric": rule.metric, "table": rule.table, "metric_date": now.date().isoformat(), "value": 0.0,
               "expected": 100.0, "change_pct": -100.0, "owners": list(rule.owners), "runbook": rule.runbook,
               "url": asset_url(config.ui_url, rule.table), "idempotency_key": key}
    channels = args.channel or list(rule.channels)
    failed = 0
    for ch in channels:
        sender = senders.get(ch)
        if sender is None:
            print(f"{ch:8} not configured (see nightjar/alerts/README.md for its environment variables)")
            failed += 1
            continue
        result = sender.send(payload, key)
        status = "ok" if result.ok else f"FAILED {config.redact(result.error)}"
        print(f"{ch:8} {status}")
        failed += 0 if result.ok else 1
    print(f"idempotency key: {key}")
    return 1 if failed else 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from nightjar.alerts.engine import backtest, format_backtest
    from nightjar.alerts.rules import RuleFileError
    from nightjar.settings import get_settings

    ruleset = _valid_ruleset(args)
    if ruleset is None:
        return 2
    settings = get_settings()
    wh = settings.warehouse
    if not wh.exists():
        print(f"no warehouse at {wh}: run the pipeline first (nightjar run)", file=sys.stderr)
        return 2
    try:
        with _read_warehouse(settings, "alerts backtest") as con:
            rows = backtest(con, ruleset, days=args.days)
    except RuleFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(format_backtest(rows))
    total = sum(r.episodes for r in rows)
    print(f"\n{total} episode(s) over the last {args.days} metric dates; nothing was written to alert state.")
    truth = Path(args.truth) if args.truth else settings.ground_truth_file
    if args.truth or truth.exists():
        from nightjar.alerts.backtest_score import format_score, load_ground_truth, score_backtest

        try:
            incidents = load_ground_truth(truth)
        except (OSError, ValueError, KeyError) as exc:
            print(f"cannot read the ground truth {truth}: {exc}", file=sys.stderr)
            return 2
        firsts = [r.first_date for r in rows if r.first_date]
        lasts = [r.last_date for r in rows if r.last_date]
        score = score_backtest(rows, incidents, args.tolerance_days,
                               date.fromisoformat(min(firsts)) if firsts else None,
                               date.fromisoformat(max(lasts)) if lasts else None)
        print(f"\nagainst {truth} (detected = a rule fires within {args.tolerance_days} day(s)):")
        print(format_score(score))
    return 0
