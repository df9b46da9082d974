"""The command line: the one place that turns errors into messages and exit codes.

Command output goes to stdout; logs and error messages go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TextIO

from monitor import DEFAULT_CONFIG, ENV_PREFIX, __version__, logs
from monitor.errors import (
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    ConfigProblem,
    MonitorError,
    ReloadRejected,
    UnitError,
    UsageError,
)
from monitor.rows import (
    data_text,
    decimal,
    dumps,
    event_rows,
    history_rows,
    iso,
    line_row,
    money_text,
    status_rows,
    when_text,
)
from monitor.units import (
    Sizes,
    format_bytes,
    format_duration,
    format_money,
    parse_duration,
)


def _lazy(name: str) -> ModuleType:
    """Module `name`, run on first use of one of its names (importlib's LazyLoader). The
    config module builds its pydantic models when imported (pydantic-settings with them:
    about 0.15 s), which `--help`, a usage error and the commands that never read a config
    (`config example`, `http password`) need not pay."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)  # as an import does: `monitor.config` works
    return module


config = _lazy("monitor.config")
DEBUG_ENV = "ESIM_MONITOR_DEBUG"
MIN_PASSWORD = 8
"""The shortest status page password `http password` hashes."""


# ---- loading -----------------------------------------------------------------------------


def load_settings(path: Path, *, deep: bool = True) -> config.Settings:
    """The config, validated. `deep` also asks adapters and Apprise (what `run` needs) and
    wants every secret; commands that only read the database (and send nothing) skip that,
    never import Apprise, and work without the secrets they do not use."""
    validators: list[config.Validator] = []
    if deep:
        from monitor import adapters, notify

        validators = [adapters.validate_lines, notify.validate_channels]
    return config.load(path, validators, secrets=deep)


def _store(settings: config.Settings) -> Any:
    from monitor.store import Store

    return Store.open_existing(settings.database_path())


def _view(settings: config.Settings) -> Any:
    """The database's read models for a command that only reads (plain sqlite3)."""
    from monitor.store.views import View

    return View.open_existing(settings.database_path())


# ---- commands ----------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon, end_programs

    path = config.config_path(args.config)
    settings = load_settings(path)
    daemon = Daemon(settings, reload=lambda: load_settings(path))
    if args.once:
        try:
            daemon.run_once()
        finally:
            daemon.close()
        return _exit_past(daemon, EXIT_OK)
    daemon.install_signal_handlers()
    try:
        daemon.run()
    finally:
        end_programs()
    return _exit_past(daemon, EXIT_OK)


def cmd_demo(args: argparse.Namespace) -> int:
    """`run` on the bundled demo config, copied into a new temporary folder (named on
    start) so every start has a fresh database."""
    from monitor import demo
    from monitor.systemd_unit import installed_executable

    if args.config is not None:
        raise UsageError("demo runs its own config; for yours: esim-monitor --config FILE run")
    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port (1-65535)")
    demo.isolate(os.environ)
    executable = installed_executable()
    with demo.workspace(args.keep, args.port) as path:
        print(
            demo.banner(path, args.port, executable, keep=args.keep, once=args.once),
            end="",
            file=sys.stderr,
            flush=True,
        )
        try:
            return cmd_run(argparse.Namespace(**{**vars(args), "config": str(path)}))
        finally:
            print(demo.farewell(path, executable, keep=args.keep), end="", file=sys.stderr)


def _exit_past(daemon: Any, code: int) -> int:
    """A send still under way after the stop's wait runs on in Apprise's thread pool,
    which the interpreter would wait for at exit, however long the receiver takes: end
    the process now instead (its row stays pending and goes out after the restart)."""
    if daemon.abandoned:
        import logging

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask the running daemon to reload its config and wait for its verdict: 0 when it
    applied the new config, the daemon's code (78: invalid) when it rejected it. Used as
    the unit's ExecReload=, so `systemctl reload` fails with the daemon's reason."""
    from monitor import control

    timeout = _duration_arg(args.timeout, "--timeout")
    pid = args.pid
    if pid is None:  # the lock file of the configured database names the daemon
        settings = load_settings(config.config_path(args.config), deep=False)
        pid = control.holder(settings.database_path())
    verdict = control.request_reload(pid, timeout.total_seconds())
    if not verdict.ok:
        raise ReloadRejected(verdict.message, verdict.exit_code)
    print(f"esim-monitor (PID {pid}): {verdict.message}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from monitor.cycle import Checker
    from monitor.model import LineState, utcnow

    settings = load_settings(config.config_path(args.config))
    lines = _pick_lines(settings, args.lines)
    store = _store(settings)
    states = store.states() if store else {}
    checker = Checker(settings)
    try:
        results = checker.read(lines)
        judged = [
            checker.judge(r, states.get(r.line, LineState(r.line)), utcnow()) for r in results
        ]
    finally:
        checker.close()
        if store:
            store.close()
    rows = []
    for item in judged:
        reading = item.result.reading
        row = line_row(
            settings,
            item.result.line,
            state=item.state.state
            if reading
            else states.get(item.result.line, LineState("")).state,
            checked_at=item.result.checked_at,
            balance=reading.balance if reading else None,
            currency=reading.currency if reading else None,
            data_remaining=reading.data_remaining if reading else None,
            data_total=reading.data_total if reading else None,
            expires_at=reading.expires_at if reading else None,
            status=reading.status if reading else None,
            renewal_at=reading.renewal_at if reading else None,
            renewal_price=reading.renewal_price if reading else None,
        )
        row["error"] = item.result.error
        if item.result.raw:
            row["raw"] = item.result.raw
        rows.append(row)
    if args.json:
        _print_json(rows, times=datetime.isoformat)  # as the reading gave them: its offset
    else:
        _print_lines_table(rows, settings.tz(), error_column=True)
    return EXIT_FAILURE if any(r["error"] for r in rows) else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from monitor.evaluate import describe_forecast
    from monitor.model import utcnow

    settings = load_settings(config.config_path(args.config), deep=False)
    now = utcnow()
    view = _view(settings)
    known = view.status() if view else {}
    if view:
        view.close()
    rows = status_rows(settings, known, now)
    if args.json:
        _print_json(rows, times=iso)
        return EXIT_OK
    tz = settings.tz()
    _print_lines_table(rows, tz, error_column=True)
    notes = []
    for line_id, row in zip(settings.lines, rows, strict=True):
        status = known.get(line_id)
        for metric, forecast in (status.forecasts if status else {}).items():
            if forecast.runs_out_at:
                notes.append(f"{row['line']}: {metric} {describe_forecast(forecast, now, tz)}")
        if row["source"] not in (None, "poll") or row["carried"]:
            note = f"{row['line']}: last reading {row['source']}"
            if row["carried"]:
                note += f" ({', '.join(row['carried'])} from an earlier reading)"
            notes.append(note)
        if row["snoozed_until"]:
            notes.append(f"{row['line']}: snoozed until {when_text(row['snoozed_until'], tz)}")
        if row["acknowledged"]:
            notes.append(f"{row['line']}: {row['acknowledged']} acknowledged")
    if notes:
        print()
        print("\n".join(notes))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from monitor.model import utcnow

    settings = load_settings(config.config_path(args.config), deep=False)
    (line,) = _pick_lines(settings, [args.line])
    since = utcnow() - _duration_arg(args.since, "--since")
    view = _view(settings)
    found = view.history(line, since) if view else []
    if view:
        view.close()
    rows = history_rows(found)
    if args.json or args.format == "json":
        _print_json(rows, times=iso)
    elif args.format == "csv":
        fields = list(rows[0]) if rows else ["checked_at"]
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {k: iso(v) if isinstance(v, datetime) else v for k, v in r.items()} for r in rows
        )
    else:
        from monitor.adapters import line_sizes

        tz = settings.tz()
        sizes = line_sizes(settings, line)
        _print_table(
            ["TIME", "STATE", "BALANCE", "DATA", "EXPIRES", "SOURCE", "ERROR"],
            [
                [
                    when_text(r["checked_at"], tz),
                    r["level"] or "-",
                    money_text(r["balance"], r["currency"]),
                    data_text(r["data_remaining"], r["data_total"], sizes),
                    when_text(r["expires_at"], tz),
                    r["source"],
                    r["error"] or "",
                ]
                for r in rows
            ],
        )
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    from monitor.model import utcnow

    settings = load_settings(config.config_path(args.config), deep=False)
    if args.line:
        _pick_lines(settings, [args.line])
    since = utcnow() - _duration_arg(args.since, "--since")
    view = _view(settings)
    found = view.events(since, args.line) if view else []
    if view:
        view.close()
    rows = event_rows(found)
    if args.json:
        _print_json(rows, times=iso)
        return EXIT_OK
    tz = settings.tz()
    _print_table(
        ["TIME", "LINE", "EVENT", "CHANNEL", "DELIVERY", "MESSAGE"],
        [
            [
                when_text(r["created_at"], tz),
                r["line"] or "",
                r["type"],
                r["channel"] or "-",
                _delivery(r, tz),
                r["message"] or "",
            ]
            for r in rows
        ],
    )
    return EXIT_OK


def _writable_store(args: argparse.Namespace) -> tuple[config.Settings, Any]:
    from monitor.store import Store

    settings = load_settings(config.config_path(args.config), deep=False)
    _pick_lines(settings, [args.line])
    return settings, Store.open(settings.database_path())


def cmd_snooze(args: argparse.Namespace) -> int:
    from monitor.model import utcnow

    duration = _duration_arg(args.duration, "DURATION")
    settings, store = _writable_store(args)
    until = utcnow() + duration
    try:
        store.snooze(args.line, until)
    finally:
        store.close()
    print(f"{args.line}: alerts snoozed until {when_text(until, settings.tz())}")
    return EXIT_OK


def cmd_relay_url(args: argparse.Namespace) -> int:
    """A new relay token for the line (the old one stops working) and the URL to paste."""
    from urllib.parse import quote

    from monitor.store import RelayTokens

    settings, store = _writable_store(args)  # migrated: the relay_tokens table exists
    store.close()
    tokens = RelayTokens(settings.database_path())
    try:
        token = tokens.issue(args.line)
    finally:
        tokens.close()
    base = settings.http.public_url
    if base is None:
        listen = settings.http.listen or "127.0.0.1:8750"
        base = f"http://{listen}"
        print(
            "note: [http] public_url is not set; this URL works only where "
            f"{listen} is reachable (set public_url to the reverse proxy's https URL)",
            file=sys.stderr,
        )
    if settings.http.listen is None:
        print("note: [http] listen is not set: the daemon serves no relay yet", file=sys.stderr)
    url = f"{base}/relay/{quote(args.line)}"
    print(f"{url}?token={token}")
    print(f"(or POST to {url} with the header  Authorization: Bearer {token})")
    print("Any earlier URL of this line no longer works.")
    return EXIT_OK


def cmd_hooks_subscribe(args: argparse.Namespace) -> int:
    """Register `public_url/hooks/ACCOUNT` with the account's provider, where it has an API
    for it (Airalo); print what the provider answered for each kind of notification."""
    from urllib.parse import quote

    from monitor import adapters
    from monitor.errors import ConfigProblem
    from monitor.tokens import TokenCache
    from monitor.webhooks import WEBHOOKS, secret_text

    path = config.config_path(args.config)
    settings = load_settings(path)
    account = settings.accounts.get(args.account)
    if account is None:
        known = ", ".join(sorted(settings.accounts)) or "none"
        raise UsageError(f"unknown account {args.account!r} (configured: {known})")
    cls = adapters.load(account.provider)
    provider = getattr(cls, "provider", account.provider)
    if not cls.subscribes_webhooks:
        portal = sorted(
            getattr(adapters.load(name), "provider", name)
            for name in WEBHOOKS
            if not adapters.load(name).subscribes_webhooks
        )
        where = (
            f"give it PUBLIC_URL/hooks/{args.account} in {provider}'s own portal or console"
            if account.provider in WEBHOOKS
            else f"the monitor takes no webhooks from {provider}"
        )
        raise UsageError(
            f"account {args.account!r}: {provider} has no API here to register webhooks: "
            f"{where} (set up in their portals: {', '.join(portal) or 'none'}; see the README, "
            "Provider webhooks)"
        )
    problems = []
    if settings.http.public_url is None:
        problems.append(
            ConfigProblem(
                "http.public_url",
                f"set it to the URL the world reaches the daemon at: {provider} is given "
                f"PUBLIC_URL/hooks/{args.account}",
            )
        )
    webhook = WEBHOOKS.get(account.provider)
    for key in webhook.secrets if webhook is not None else ():
        if not secret_text(account.options.get(key)):
            problems.append(
                ConfigProblem(
                    f"accounts.{args.account}.{key}",
                    f"set it: without it the daemon refuses every {provider} webhook",
                )
            )
    if problems:
        raise ConfigError(str(path), problems)
    assert settings.http.public_url is not None
    url = f"{settings.http.public_url}/hooks/{quote(args.account)}"
    context = adapters.AdapterContext(
        TokenCache(settings.database_path()),
        config.secret_values(settings),
        settings.tz(),
        settings.database_path(),
    )
    try:
        results = adapters.build_account(settings, args.account, context).subscribe_webhooks(url)
    finally:
        context.close()
        context.tokens.close()
    if args.json:
        _print_json(
            [
                {
                    "account": args.account,
                    "provider": account.provider,
                    "kind": r.kind,
                    "ok": r.error is None,
                    "url": r.url,
                    "levels": list(r.levels),
                    "message": r.message,
                    "error": r.error,
                }
                for r in results
            ]
        )
    else:
        print(f"{provider} account {args.account}: webhooks to {url}")
        for r in results:
            if r.error is not None:
                print(f"  {r.kind}: refused: {r.error}")
                continue
            levels = f", at {', '.join(f'{v}%' for v in r.levels)}" if r.levels else ""
            said = f" ({provider}: {r.message})" if r.message else ""
            print(f"  {r.kind}: registered to {r.url or '?'}{levels}{said}")
            if r.url is not None and r.url != url:
                print(f"  note: {provider} registered {r.url}, not {url}")
    return EXIT_FAILURE if any(r.error is not None for r in results) else EXIT_OK


def cmd_http_password(args: argparse.Namespace) -> int:
    """Print the hash of a password for `[http] password_hash`; the config is not touched."""
    from monitor.http.auth import hash_password

    if sys.stdin.isatty():
        import getpass

        password = getpass.getpass("Password for the status page: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"choose a password of at least {MIN_PASSWORD} characters")
    print(hash_password(password))
    print(
        'Paste it into the config as  [http] password_hash = "..."  (with user), or into '
        "the credential http__password_hash.",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_http_token(args: argparse.Namespace) -> int:
    """A new API token, stored as its hash; printed once."""
    from monitor.http.auth import new_token, token_hash
    from monitor.model import utcnow
    from monitor.store import Store
    from monitor.store import web as web_tables

    settings = load_settings(config.config_path(args.config), deep=False)
    store = Store.open(settings.database_path())
    token = new_token()
    try:
        web_tables.add_token(store, token_hash(token), args.name, utcnow())
    finally:
        store.close()
    print(token)
    print(
        f"API token {args.name!r}: send it as  Authorization: Bearer TOKEN. It is shown only "
        "now (the database keeps its hash).",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_http_tokens(args: argparse.Namespace) -> int:
    """The API tokens' names and when each was issued (the tokens themselves are gone)."""
    from monitor.store import Store
    from monitor.store import web as web_tables

    settings = load_settings(config.config_path(args.config), deep=False)
    store = Store.open(settings.database_path())
    try:
        issued = web_tables.tokens(store)
    finally:
        store.close()
    tz = settings.tz()
    for name, created in issued:
        print(f"{name}\tissued {created.astimezone(tz):%Y-%m-%d %H:%M %Z}")
    if not issued:
        print("no API token (esim-monitor http token NAME issues one)", file=sys.stderr)
    return EXIT_OK


def cmd_http_revoke(args: argparse.Namespace) -> int:
    """Every API token of that name stops working at once (the daemon asks the database
    on each request)."""
    from monitor.store import Store
    from monitor.store import web as web_tables

    settings = load_settings(config.config_path(args.config), deep=False)
    store = Store.open(settings.database_path())
    try:
        gone = web_tables.revoke_tokens(store, args.name)
    finally:
        store.close()
    if not gone:
        print(
            f"no API token is named {args.name!r} (esim-monitor http tokens lists them)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(f"revoked {gone} API token{'s' if gone > 1 else ''} named {args.name!r}")
    return EXIT_OK


def cmd_unsnooze(args: argparse.Namespace) -> int:
    from monitor.model import utcnow

    _, store = _writable_store(args)
    try:
        store.snooze(args.line, None)
        store.acknowledge(args.line, None, utcnow())
    finally:
        store.close()
    print(f"{args.line}: alerts on again (snooze and acknowledgement cleared)")
    return EXIT_OK


def cmd_ack(args: argparse.Namespace) -> int:
    from monitor.model import Level, utcnow

    _, store = _writable_store(args)
    try:
        state = store.state(args.line)
        if state.level is None or state.level == Level.OK:
            print(f"{args.line}: nothing to acknowledge (state {state.state})", file=sys.stderr)
            return EXIT_FAILURE
        store.acknowledge(args.line, state.level, utcnow())
    finally:
        store.close()
    print(f"{args.line}: {state.state} acknowledged; no reminders until its state changes")
    return EXIT_OK


def cmd_record(args: argparse.Namespace) -> int:
    """A reading the owner has (from the carrier's app or text), judged like a polled one."""
    from monitor.cycle import Checker
    from monitor.manual import ManualFigures, record_manual
    from monitor.model import utcnow
    from monitor.store import Store

    settings = load_settings(config.config_path(args.config))
    (line,) = _pick_lines(settings, [args.line])
    figures = ManualFigures(args.balance, args.data, args.expires, args.renewed)
    if figures.empty():
        raise UsageError("record: give at least one of --balance, --data, --expires, --renewed")
    plan = settings.adapter_name(line) == "plan"
    if args.renewed and not (plan and settings.lines[line].options.get("renews")):
        raise UsageError(f"record --renewed: {line} is no plan line with `renews`")
    store = Store.open(settings.database_path())
    checker = Checker(settings)
    try:
        judged = record_manual(settings, checker, store, line, figures, utcnow())
    finally:
        checker.close(wait=60.0)
        store.close()
    from monitor.evaluate import summarize

    print(f"{line}: recorded ({summarize(judged.metrics)}); state {judged.state.state}")
    for event in judged.events:
        print(f"{line}: {event.type} raised")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from monitor import report
    from monitor.model import utcnow

    settings = load_settings(config.config_path(args.config), deep=False)
    now = utcnow()
    store = _view(settings)
    try:
        if args.png:
            folder = Path(args.png).parent
            if not folder.is_dir():
                raise UsageError(f"--png: no folder {str(folder)!r} to write the chart in")
            if store is None:
                print("no history yet: run the daemon first", file=sys.stderr)
                return EXIT_FAILURE
            try:
                made = report.write_chart(store, list(settings.lines), Path(args.png))
            except report.ChartsUnavailable:
                raise UsageError(
                    "charts need matplotlib: pip install 'esim-monitor[charts]'"
                ) from None
            except OSError as exc:
                raise UsageError(f"--png: cannot write {args.png}: {exc.strerror or exc}") from None
            if not made:
                print("no readings in the last days to chart", file=sys.stderr)
                return EXIT_FAILURE
            print(f"chart written to {args.png}")
            return EXIT_OK
        since = now - _duration_arg(args.since, "--since")
        if args.json:
            _print_json(report.summary_rows(settings, store, now, since), times=iso)
            return EXIT_OK
        title, body = report.summary(settings, store, now, since)
    finally:
        if store:
            store.close()
    print(title)
    print(body)
    return EXIT_OK


def cmd_recharge(args: argparse.Namespace) -> int:
    """`recharge LINE [--dry-run]` tops a line up now; `recharge history [LINE]` lists."""
    if args.target == "history":
        return _recharge_history(args)
    if args.line is not None:
        raise UsageError("usage: esim-monitor recharge LINE [--dry-run] | recharge history [LINE]")
    from monitor import adapters
    from monitor.model import utcnow
    from monitor.recharge import Recharger
    from monitor.store import Store
    from monitor.tokens import TokenCache

    settings = load_settings(config.config_path(args.config))
    (line,) = _pick_lines(settings, [args.target])
    recharge = settings.lines[line].recharge
    if recharge is None:
        raise UsageError(f"line {line!r} has no [lines.{line}.recharge] table")
    store = Store.open(settings.database_path())
    context = adapters.AdapterContext(
        TokenCache(settings.database_path()),
        config.secret_values(settings),
        settings.tz(),
        settings.database_path(),
    )
    try:
        known = store.status().get(line)
        reading = known.reading if known else None
        recharger = Recharger(
            settings, store, lambda line_id: adapters.build(settings, line_id, context)
        )
        event = recharger.manual(line, reading, utcnow(), args.dry_run or recharge.dry_run)
    finally:
        context.close()
        context.tokens.close()
        store.close()
    from monitor.notify import render

    print(render(event, None, settings)[0])
    return EXIT_OK if event.type == "recharge-requested" else EXIT_FAILURE


def _recharge_history(args: argparse.Namespace) -> int:
    settings = load_settings(config.config_path(args.config), deep=False)
    if args.line:
        _pick_lines(settings, [args.line])
    view = _view(settings)
    found = view.recharge_history(args.line) if view else []
    if view:
        view.close()
    rows = [
        {
            "id": r.id,
            "line": r.line,
            "key": r.key,
            "state": r.state,
            "action": r.action,
            "package": r.package,
            "amount": decimal(r.amount),
            "price": decimal(r.price),
            "currency": r.currency,
            "dry_run": int(r.dry_run),
            "manual": int(r.manual),
            "requested_at": r.requested_at,
            "submitted_at": r.submitted_at,
            "settled_at": r.settled_at,
            "baseline_balance": decimal(r.baseline_balance),
            "baseline_data": r.baseline_data,
            "reference": r.reference,
            "detail": r.detail,
        }
        for r in found
    ]
    if args.json:
        _print_json(rows, times=iso)
        return EXIT_OK
    tz = settings.tz()
    _print_table(
        ["TIME", "LINE", "STATE", "ACTION", "WHAT", "PRICE", "REFERENCE", "DETAIL"],
        [
            [
                when_text(r["requested_at"], tz),
                r["line"],
                r["state"] + (" (manual)" if r["manual"] else ""),
                r["action"],
                r["package"] or money_text(r["amount"], r["currency"]),
                money_text(r["price"], r["currency"]),
                r["reference"] or "",
                r["detail"] or "",
            ]
            for r in rows
        ],
    )
    return EXIT_OK


def cmd_modems(args: argparse.Namespace) -> int:
    """Modems ModemManager knows, with the ids a line's `modem` key takes."""
    from monitor import modem

    found = modem.list_modems()
    rows = [
        {
            "index": m.index,
            "equipment_id": m.equipment_id,
            "model": " ".join(p for p in (m.manufacturer, m.model) if p),
            "state": m.state,
            "sim_iccid": m.sim_iccid,
            "operator": m.operator or m.sim_operator,
        }
        for m in found
    ]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no modems: is ModemManager running and a modem plugged in?", file=sys.stderr)
        return EXIT_FAILURE
    _print_table(
        ["INDEX", "EQUIPMENT ID (IMEI)", "MODEL", "STATE", "SIM ICCID", "OPERATOR"],
        [[str(r["index"]), *(str(r[k] or "-") for k in list(r)[1:])] for r in rows],
    )
    return EXIT_OK


def _modem_lock_at(args: argparse.Namespace) -> Path | None:
    """The database whose modem locks a `--modem` session takes, so it waits for the
    daemon's session on that modem: the config's, when there is one to read."""
    path = config.config_path(args.config)
    if not path.exists():
        return None
    try:
        return load_settings(path, deep=False).database_path()
    except MonitorError:
        return None


def cmd_ussd(args: argparse.Namespace) -> int:
    """Send one code and print the raw reply, to write a pattern for a carrier. With a
    LINE, also show what that line's patterns read from the reply."""
    from monitor import modem
    from monitor.adapters.ussd import UssdOptions
    from monitor.adapters.ussd_replies import UnreadableReply, read_reply
    from monitor.model import utcnow

    if args.modem:
        if len(args.target) != 1:
            raise UsageError("usage: esim-monitor ussd --modem ID CODE")
        reply = modem.send_ussd(
            args.modem,
            args.target[0],
            args.timeout,
            lock_at=_modem_lock_at(args),
            respond=args.respond,
        )
        print(reply)
        return EXIT_OK
    if len(args.target) != 2:
        raise UsageError("usage: esim-monitor ussd (LINE | --modem ID) CODE")
    line, code = args.target
    settings = load_settings(config.config_path(args.config))
    _pick_lines(settings, [line])
    if settings.adapter_name(line) != "ussd":
        raise UsageError(f"line {line!r} is not a ussd line; use --modem ID")
    options = UssdOptions.model_validate(settings.lines[line].options)
    spec = options.spec_for(code)
    reply = modem.send_ussd(
        options.modem,
        code,
        options.timeout.total_seconds(),
        lock_at=settings.database_path(),
        respond=args.respond or spec.respond,
        expect=() if args.respond else spec.expect,
    )
    print(reply)
    try:
        figures = read_reply(
            reply,
            spec,
            tz=options.zone(),
            now=utcnow(),
            currency=options.default_currency(),
        )
    except UnreadableReply as exc:
        print(f"# {line} would not read this reply: {exc}", file=sys.stderr)
        return EXIT_OK
    from monitor.adapters import line_sizes

    said = figures_text(figures, line_sizes(settings, line), settings.tz())
    print(f"# {line} reads: {said}", file=sys.stderr)
    return EXIT_OK


def figures_text(figures: Any, sizes: Sizes, tz: tzinfo) -> str:
    """What a reply was read as, in words (`ussd LINE CODE`): each figure it gave."""
    said = []
    if figures.balance is not None:
        said.append(f"balance {format_money(figures.balance, figures.currency)}")
    if figures.data_remaining is not None:
        said.append(f"data left {data_text(figures.data_remaining, figures.data_total, sizes)}")
    elif figures.data_total is not None:
        said.append(f"data plan {format_bytes(figures.data_total, sizes)}")
    if figures.data_used is not None:
        said.append(f"data used {format_bytes(figures.data_used, sizes)}")
    if figures.expires_at is not None:
        said.append(f"expires {when_text(figures.expires_at, tz)}")
    price = figures.renewal_price
    if figures.renewal_at is not None:
        cost = f" for {format_money(price, figures.currency)}" if price is not None else ""
        said.append(f"renews {when_text(figures.renewal_at, tz)}{cost}")
    elif price is not None:
        said.append(f"renewal price {format_money(price, figures.currency)}")
    return ", ".join(said) or "no figure"


def cmd_sms_send(args: argparse.Namespace) -> int:
    """Send one text from the modem, to try a carrier's SMS keyword by hand; the text and
    its reply stay on the modem for `sms list`."""
    from monitor import modem

    sent = modem.send_sms(
        args.modem, args.number, args.text, args.timeout, lock_at=_modem_lock_at(args)
    )
    print(f"sent SMS {sent.index} to {args.number}; see the reply with: esim-monitor sms list")
    return EXIT_OK


def cmd_sms_list(args: argparse.Namespace) -> int:
    """The texts on the modem, sent and received, with their senders and network times."""
    from monitor import modem

    texts = modem.list_sms(args.modem, args.timeout, lock_at=_modem_lock_at(args))
    if args.json:
        _print_json([t.as_dict() for t in texts])
        return EXIT_OK
    if not texts:
        print("no SMS on the modem", file=sys.stderr)
        return EXIT_OK
    _print_table(
        ["INDEX", "STATE", "NUMBER", "TIME (UTC)", "TEXT"],
        [
            [
                t.index,
                t.state or "-",
                t.number or "-",
                t.timestamp.strftime("%Y-%m-%d %H:%M:%S") if t.timestamp else "-",
                " ".join((t.text or "").split()),
            ]
            for t in texts
        ],
    )
    return EXIT_OK


def cmd_systemd_unit(args: argparse.Namespace) -> int:
    """The unit file with this installation's paths, or the credentials or modem drop-in."""
    from monitor import systemd_unit

    try:
        if args.modem:
            sys.stdout.write(systemd_unit.modem_dropin())
            return EXIT_OK
        if args.credentials is not None:
            sys.stdout.write(systemd_unit.render_credentials(Path(args.credentials)))
            return EXIT_OK
        executable = systemd_unit.installed_executable()
        path = config.config_path(args.config)
        for problem in systemd_unit.check_paths(executable, path):
            print(f"warning: {problem}", file=sys.stderr)
        sys.stdout.write(systemd_unit.render_unit(executable, path))
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    """A completion script for the shell, made from this parser."""
    from monitor import completion

    sys.stdout.write(completion.render(build_parser(), args.shell))
    return EXIT_OK


def cmd_manpage(args: argparse.Namespace) -> int:
    """esim-monitor(1) in roff, made from this parser."""
    from monitor import manpage

    sys.stdout.write(manpage.render(build_parser()))
    return EXIT_OK


def cmd_config_validate(args: argparse.Namespace) -> int:
    from monitor import adapters

    def rows(problems: Iterable[ConfigProblem]) -> list[dict[str, str]]:
        return [{"path": p.path, "message": p.message} for p in problems]

    path = config.config_path(args.config)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        if not args.json:
            raise
        answer = {"config": str(path), "valid": False, "problems": rows(exc.problems)}
        _print_json({**answer, "warnings": []})
        return exc.exit_code
    warnings = [*adapters.interval_warnings(settings), *adapters.threshold_warnings(settings)]
    missing = settings.http.login_missing() if settings.http.listen is not None else None
    if missing is not None:
        warnings.append(ConfigProblem("", missing))
    if not settings.lines:
        warnings.append(ConfigProblem("", "no [lines.*] configured, nothing will be watched"))
    if args.json:
        _print_json(
            {
                "config": str(path),
                "valid": True,
                "lines": len(settings.lines),
                "channels": len(settings.channels),
                "problems": [],
                "warnings": rows(warnings),
            }
        )
        return EXIT_OK
    print(f"{path}: ok ({len(settings.lines)} lines, {len(settings.channels)} channels)")
    for problem in warnings:
        print(logs.as_warning(f"{path}: warning: {problem}"), file=sys.stderr)
    if not settings.channels:
        print(
            f"{path}: note: no [channels.*] configured; alerts reach only the log and database",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = load_settings(config.config_path(args.config))
    data = config.effective(settings)
    # absolute: which file, whichever folder the command ran in
    data.setdefault("monitor", {})["database"] = os.path.abspath(settings.database_path())
    if args.json:
        _print_json(data)
    else:
        sys.stdout.write(config.dump_toml(data))
    return EXIT_OK


def cmd_config_example(args: argparse.Namespace) -> int:
    from importlib.resources import files

    sys.stdout.write(files("monitor").joinpath("example.toml").read_text(encoding="utf-8"))
    return EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:
    from monitor.model import Event, utcnow
    from monitor.notify import Notifier

    settings = load_settings(config.config_path(args.config))
    if args.channel and args.channel not in settings.channels:
        configured = ", ".join(settings.channels) or "none"
        raise UsageError(f"unknown channel {args.channel!r}; configured: {configured}")
    names = [args.channel] if args.channel else list(settings.channels)
    if not names:
        print("no channels configured: add a [channels.NAME] table with an Apprise url")
        return EXIT_FAILURE
    notifier = Notifier(settings)
    line = next(iter(settings.lines), "test")
    event = Event("test", line, utcnow(), {"summary": "If you read this, alerts reach you here."})
    failed = 0
    results = []
    for name in names:
        if settings.channels[name].type == "alertmanager":
            from monitor import alertmanager

            outcome = alertmanager.send_test(settings, name)
            lifetime = format_duration(alertmanager.TEST_LIFETIME)
            done = f"delivered (alert {alertmanager.TEST_ALERTNAME}, resolves itself in {lifetime})"
        else:
            outcome = notifier.send(name, event)
            done = "delivered"
        where = config.masked_url(settings.channels[name].url.get_secret_value())
        results.append({"channel": name, "url": where, "ok": outcome.ok, "error": outcome.error})
        if not args.json:
            print(f"{name}: {done}" if outcome.ok else f"{name} ({where}): FAILED: {outcome.error}")
        failed += not outcome.ok
    if args.json:
        _print_json(results)
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_adapters(args: argparse.Namespace) -> int:
    from monitor import adapters

    rows = []
    for name, target in sorted(adapters.available().items()):
        try:
            cls = adapters.load(name)
        except Exception as exc:
            rows.append({"name": name, "target": target, "error": str(exc), "options": {}})
            continue
        account = _fields(cls.AccountOptions) if cls.AccountOptions is not None else None
        rows.append(
            {
                "name": name,
                "description": cls.description,
                "account_options": account,
                "options": _fields(cls.Options),
                **({"presets": _presets()} if name == "ussd" else {}),
            }
        )
    if args.json:
        _print_json(rows)
        return EXIT_OK
    for row in rows:
        print(f"{row['name']}: {row.get('description') or row.get('error', '')}")
        for title, key in (("[accounts.NAME]", "account_options"), ("[lines.ID]", "options")):
            if row.get(key):
                print(f"  {title}")
            for option, spec in (row.get(key) or {}).items():
                need = "required" if spec["required"] else f"default {spec['default']}"
                if not spec["required"] and spec["default"] is None:
                    need = "optional"
                meaning = f": {spec['description']}" if spec["description"] else ""
                print(f"    {option} ({need}){meaning}")
        for preset, info in (row.get("presets") or {}).items():
            state = "verified" if info["verified"] else "not verified"
            print(f"  preset {preset} ({state}): {info['description']}")
    return EXIT_OK


def _presets() -> dict[str, dict[str, object]]:
    """The USSD carrier presets, each with whether its patterns were checked on a real reply."""
    from monitor.adapters.ussd_replies import PRESETS

    return {
        name: {
            "description": p.description,
            "verified": p.verified,
            "codes": [s.code for s in p.codes],
            "refill": p.refill,
            "source": p.source,
        }
        for name, p in PRESETS.items()
    }


def _fields(model: Any) -> dict[str, Any]:
    """An options model as plain data: required or its default (in config units)."""
    fields = {}
    for key, field in model.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, timedelta):
            default = format_duration(default)
        elif hasattr(default, "get_secret_value"):
            default = None
        fields[key] = {
            "required": field.is_required(),
            "default": default,
            "description": field.description,
        }
    return fields


# ---- helpers ----------------------------------------------------------------------------


def _pick_lines(settings: config.Settings, wanted: Sequence[str]) -> list[str]:
    unknown = [w for w in wanted if w not in settings.lines]
    if unknown:
        raise UsageError(
            f"unknown line {', '.join(map(repr, unknown))}; configured: "
            f"{', '.join(settings.lines) or 'none'}"
        )
    return list(wanted) or list(settings.lines)


def _duration_arg(text: str, option: str) -> timedelta:
    try:
        return parse_duration(text)
    except UnitError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _print_json(data: Any, times: Callable[[datetime], Any] | None = None) -> None:
    """`times` writes the datetimes in `data` (rows keep them typed for their tables)."""

    sys.stdout.write(dumps(data, times) + "\n")


def _delivery(row: dict[str, Any], tz: tzinfo) -> str:
    status = row["status"] or ""
    if status == "sent":
        return f"sent {when_text(row['sent_at'], tz)}"
    if status == "pending" and row["attempts"]:
        return f"pending, {row['attempts']} failed, next {when_text(row['next_attempt_at'], tz)}"
    return status


def _print_lines_table(rows: list[dict[str, Any]], tz: tzinfo, error_column: bool) -> None:
    headers = ["LINE", "LABEL", "STATE", "BALANCE", "DATA", "EXPIRES", "CHECKED"]
    if error_column:
        headers.append("ERROR")
    table = []
    for r in rows:
        cells = [
            r["line"],
            r["label"],
            r["state"],
            money_text(r["balance"], r["currency"]),
            data_text(r["data_remaining_bytes"], r["data_total_bytes"], r["data_sizes"]),
            when_text(r["expires_at"], tz),
            when_text(r["checked_at"], tz),
        ]
        if error_column:
            cells.append(r.get("error") or "")
        table.append(cells)
    _print_table(headers, table)


def _print_table(headers: list[str], rows: Iterable[list[str]], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    rows = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for row in [headers, *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


# ---- parser and main ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors (exit 2) journald files at err, as the other errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_USAGE, logs.as_error(f"{self.format_usage()}{self.prog}: error: {message}\n")
        )


JSON_HELP = "print JSON (its fields: the README's CLI reference)"
LINE_HELP = "a line id of the config"

COMMAND_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("the daemon", ("run", "demo", "reload", "check")),
    ("reading the database", ("status", "history", "events", "report")),
    ("acting on lines", ("snooze", "unsnooze", "ack", "record", "recharge")),
    ("pushes and the status page", ("relay", "hooks", "http")),
    ("config and channels", ("config", "notify", "adapters")),
    ("modems", ("modems", "ussd", "sms")),
    ("installing", ("systemd-unit", "completion", "manpage")),
)
"""How `--help` lists the commands, by what a person came to do (every command in one
group: a test keeps this in step with the parser)."""

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK}   ok
  {EXIT_FAILURE}   a runtime failure: a failed check or delivery, a refused top-up, a busy lock
  {EXIT_USAGE}   usage: an unknown command, line or channel, a bad argument
  {EXIT_DATABASE}  an unusable database: corrupt, from a newer version, or not creatable
  {EXIT_CONFIG}  an invalid config (every problem listed with its file and key path)
  130 interrupted (Ctrl-C)"""


class _GroupedHelp(argparse.RawDescriptionHelpFormatter):
    """`--help` with the commands under the headings of COMMAND_GROUPS (and the exit codes
    after them as written)."""

    def _format_action(self, action: argparse.Action) -> str:
        if not isinstance(action, argparse._SubParsersAction):
            return super()._format_action(action)
        by_name = {choice.dest: choice for choice in action._get_subactions()}
        groups = [(t, [by_name.pop(n) for n in ns if n in by_name]) for t, ns in COMMAND_GROUPS]
        if by_name:  # a command no group names yet: listed, not lost
            groups.append(("other", list(by_name.values())))
        parts = []
        for title, choices in groups:
            parts.append(f"{' ' * self._current_indent}{title}:\n")
            self._indent()
            for choice in choices:
                parts.append(super()._format_action(choice))
            self._dedent()
        return "".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="esim-monitor",
        description="Watch prepaid and eSIM lines (balance, data, expiry); alert through Apprise.",
        epilog=EXIT_CODES_HELP,
        formatter_class=_GroupedHelp,
    )
    parser._positionals.title = "commands"
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global_options(parser, defaults=True)
    # The same options after a command (`status --config FILE`): suppressed defaults there,
    # so a value given before the command is not overwritten by the command's parser.
    after = argparse.ArgumentParser(add_help=False)
    _add_global_options(after, defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str, **kw: Any) -> Any:
        p = (kw.pop("parent", None) or sub).add_parser(
            name, help=help, description=help, parents=[after], **kw
        )
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the daemon")
    p.add_argument("--once", action="store_true", help="check every line once, deliver, exit")
    p = add(
        "demo",
        cmd_demo,
        "run the bundled demo (three simulated lines, no network) on a fresh database in a "
        "new temporary folder",
    )
    p.add_argument("--once", action="store_true", help="check every line once, deliver, exit")
    p.add_argument(
        "--keep", action="store_true", help="keep the folder when the demo ends (default: delete)"
    )
    p.add_argument(
        "--port", type=int, default=8757, help="the status page's port on 127.0.0.1 (default 8757)"
    )
    p = add(
        "reload",
        cmd_reload,
        "ask the running daemon to reload its config; exit 0 when it applied it, else "
        "non-zero with its reason",
    )
    p.add_argument(
        "--pid",
        type=int,
        metavar="PID",
        help="the daemon's PID (the unit passes $MAINPID); default: from the database's lock",
    )
    p.add_argument("--timeout", default="60s", help="longest wait for the verdict (default 60s)")

    p = add("check", cmd_check, "read lines now and print them; records and sends nothing")
    p.add_argument("lines", nargs="*", metavar="LINE", help="the lines to read (default: all)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add("status", cmd_status, "last reading and state of each line, from the database")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add("history", cmd_history, "readings of one line")
    p.add_argument("line", metavar="LINE", help=LINE_HELP)
    p.add_argument("--since", default="7d", help="how far back (default 7d)")
    p.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="default: table"
    )
    p.add_argument("--json", action="store_true", help="the same as --format json")

    p = add("events", cmd_events, "events and their delivery to each channel")
    p.add_argument("--since", default="7d", help="how far back (default 7d)")
    p.add_argument("--line", metavar="LINE", help="only this line's events")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add("snooze", cmd_snooze, "silence a line's alerts for a while")
    p.add_argument("line", metavar="LINE", help=LINE_HELP)
    p.add_argument("duration", metavar="DURATION", help="such as 12h or 3d")
    p = add("unsnooze", cmd_unsnooze, "undo snooze and ack for a line")
    p.add_argument("line", metavar="LINE", help=LINE_HELP)
    p = add("ack", cmd_ack, "acknowledge a low line: no reminders until its state changes")
    p.add_argument("line", metavar="LINE", help=LINE_HELP)
    p = add(
        "record",
        cmd_record,
        "record a reading you have (from the carrier's app or text): judged and alerted as "
        "a polled one",
    )
    p.add_argument("line", metavar="LINE", help=LINE_HELP)
    p.add_argument("--balance", metavar="AMOUNT", help="in the line's currency, such as 12.50")
    p.add_argument("--data", metavar="SIZE", help="data left, such as 2GB or 500MiB")
    p.add_argument("--expires", metavar="DATE", help="the last day of the plan, such as 2026-12-30")
    p.add_argument(
        "--renewed", action="store_true", help="a plan line renewed now: on to its next period"
    )
    p = add("relay", _group_help, "the phone relay: texts forwarded by a phone (docs/phones.md)")
    relay_sub = p.add_subparsers(dest="relay_command", metavar="ACTION", required=True)
    q = add(
        "url",
        cmd_relay_url,
        "make a new relay token for a line (replacing the old) and print the URL to paste",
        parent=relay_sub,
    )
    q.add_argument("line", metavar="LINE", help=LINE_HELP)
    p = add("hooks", _group_help, "provider webhooks: POST /hooks/ACCOUNT")
    hooks_sub = p.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)
    q = add(
        "subscribe",
        cmd_hooks_subscribe,
        "register PUBLIC_URL/hooks/ACCOUNT with the account's provider (Airalo) and print "
        "what it answered",
        parent=hooks_sub,
    )
    q.add_argument("account", metavar="ACCOUNT", help="an [accounts.NAME] of the config")
    q.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("http", _group_help, "the status page's login: a password hash, API tokens")
    http_sub = p.add_subparsers(dest="http_command", metavar="ACTION", required=True)
    add(
        "password",
        cmd_http_password,
        "read a password (twice on a terminal, else one line of stdin) and print the "
        "password_hash to paste; the config is not touched",
        parent=http_sub,
    )
    q = add(
        "token",
        cmd_http_token,
        "issue an API token (Authorization: Bearer TOKEN), printed once",
        parent=http_sub,
    )
    q.add_argument("name", nargs="?", default="api", metavar="NAME", help="default: api")
    add("tokens", cmd_http_tokens, "list the API tokens' names and dates", parent=http_sub)
    q = add(
        "revoke",
        cmd_http_revoke,
        "revoke the API tokens of a name: they stop working at once",
        parent=http_sub,
    )
    q.add_argument("name", metavar="NAME", help="the name the tokens were issued under")
    p = add("report", cmd_report, "print the digest summary, or write the chart")
    p.add_argument("--png", metavar="FILE", help="write a PNG chart of recent readings")
    p.add_argument("--since", default="24h", help="failed checks since (default 24h)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add(
        "recharge",
        cmd_recharge,
        "top a line up now (under its caps), or list the ledger: recharge history [LINE]",
    )
    p.add_argument(
        "target", metavar="LINE|history", help="the line to top up, or history for the ledger"
    )
    p.add_argument("line", nargs="?", metavar="LINE", help="with history: only this line")
    p.add_argument("--dry-run", action="store_true", help="go through the caps, call nothing")
    p.add_argument("--json", action="store_true", help="with history: JSON")

    p = add("config", _group_help, "validate, show or print an example config")
    config_sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = add(
        "validate", cmd_config_validate, "check the config and exit 0, or 78", parent=config_sub
    )
    q.add_argument("--json", action="store_true", help=JSON_HELP)
    q = add("show", cmd_config_show, "the effective config, secrets masked", parent=config_sub)
    q.add_argument("--json", action="store_true", help=JSON_HELP)
    add("example", cmd_config_example, "print a commented example config", parent=config_sub)

    p = add("notify", _group_help, "notification tools")
    notify_sub = p.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    q = add("test", cmd_notify_test, "send a test message to the channels", parent=notify_sub)
    q.add_argument("--channel", metavar="NAME", help="only this channel (default: every one)")
    q.add_argument("--json", action="store_true", help=JSON_HELP)

    p = add("modems", cmd_modems, "modems ModemManager knows, with their equipment ids and SIMs")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("ussd", cmd_ussd, "send a USSD code and print the raw reply")
    p.add_argument(
        "target",
        nargs="+",
        metavar="LINE CODE | CODE",
        help="a ussd line and a code (read with its patterns), or a code with --modem",
    )
    p.add_argument("--modem", metavar="ID", help="equipment id (IMEI) or SIM ICCID")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument(
        "--respond",
        action="append",
        default=[],
        metavar="ANSWER",
        help="answer the menu the code opens (repeat for each step; default: the line's)",
    )

    p = add("sms", _group_help, "send a text or list the texts on a modem, to try a carrier")
    sms_sub = p.add_subparsers(dest="sms_command", metavar="ACTION", required=True)
    q = add("send", cmd_sms_send, "send one SMS from the modem", parent=sms_sub)
    q.add_argument("number", metavar="NUMBER", help="a phone number or short code ('6700')")
    q.add_argument("text", metavar="TEXT", help="the text ('BAL')")
    q = add("list", cmd_sms_list, "the texts on the modem, sent and received", parent=sms_sub)
    q.add_argument("--json", action="store_true", help=JSON_HELP)
    for q in sms_sub.choices.values():
        q.add_argument("--modem", required=True, metavar="ID", help="equipment id or SIM ICCID")
        q.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")

    p = add("systemd-unit", cmd_systemd_unit, "print the systemd unit for this installation")
    dropin = p.add_mutually_exclusive_group()
    dropin.add_argument(
        "--credentials",
        nargs="?",
        const="/etc/esim-monitor/credentials",
        metavar="DIR",
        help="instead, print a drop-in loading every file of DIR as a credential",
    )
    dropin.add_argument(
        "--modem",
        action="store_true",
        help="instead, print the drop-in for USSD lines (starts the service after ModemManager)",
    )

    p = add("adapters", cmd_adapters, "installed adapters and the options each takes")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("completion", cmd_completion, "print the shell completion script (bash, zsh, fish)")
    p.add_argument(
        "shell", choices=("bash", "zsh", "fish"), metavar="SHELL", help="bash, zsh or fish"
    )
    add("manpage", cmd_manpage, "print the man page, esim-monitor(1), in roff")
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--config, --log-level, --log-format: before the command with their defaults, after
    it (on every subcommand) without, so either place means the same."""

    def default(value: str | None) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default(None),
        help=f"config file (default: ${ENV_PREFIX}CONFIG, else {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        default=default("info"),
        help="the least severe log lines shown (default: info)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default=default("auto"),
        help="auto: readable on a terminal, JSON lines otherwise (logs always go to stderr)",
    )


def _group_help(args: argparse.Namespace) -> int:  # pragma: no cover - argparse requires action
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help exits 0, bad usage 2
        return int(exc.code or 0)
    logs.setup(args.log_level, args.log_format)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return args.func(args)
    except ConfigError as exc:
        if debug:
            traceback.print_exc()
        print(logs.as_error(str(exc)), file=sys.stderr)
        print(
            logs.as_error(f"esim-monitor: invalid config ({len(exc.problems)} problem(s))"),
            file=sys.stderr,
        )
        return exc.exit_code
    except MonitorError as exc:
        if debug:
            traceback.print_exc()
        print(logs.as_error(f"esim-monitor: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C: the programs started (in sessions of their own) too
        from monitor import children

        children.stop_all()
        print(logs.as_error("esim-monitor: interrupted"), file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            logs.as_error(
                f"esim-monitor: internal error: {type(exc).__name__} "
                f"(set {DEBUG_ENV}=1 for details)"
            ),
            file=sys.stderr,
        )
        return EXIT_FAILURE
