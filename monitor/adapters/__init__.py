"""Carrier adapters: one small interface, one registry.

An adapter reads one line and returns a `Reading`, or raises `CheckFailed`; it knows
nothing of thresholds, the store or Apprise. Built-in adapters are listed in `BUILTIN`;
third parties register theirs under the `esim_monitor.adapters` entry-point group.
"""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import UTC, timedelta, tzinfo
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.config import Account, Line, Settings, problems_from
from monitor.errors import ConfigProblem, TopUpFailed, TopUpUnknown
from monitor.model import HookSubscription, Reading, TopUpRequest, TopUpResult
from monitor.redact import Redactor
from monitor.tokens import TokenCache
from monitor.units import Sizes, format_duration

ENTRY_POINT_GROUP = "esim_monitor.adapters"

BUILTIN: dict[str, str] = {
    "demo": "monitor.adapters.demo:DemoAdapter",
    "ussd": "monitor.adapters.ussd:UssdAdapter",
    "airalo": "monitor.adapters.airalo:AiraloAdapter",
    "esimgo": "monitor.adapters.esimgo:EsimGoAdapter",
    "1nce": "monitor.adapters.onence:OnceAdapter",
    "hologram": "monitor.adapters.hologram:HologramAdapter",
    "twilio": "monitor.adapters.twilio:TwilioAdapter",
    "telnyx": "monitor.adapters.telnyx:TelnyxAdapter",
    "command": "monitor.adapters.command:CommandAdapter",
    "http_json": "monitor.adapters.http_json:HttpJsonAdapter",
    "plan": "monitor.adapters.plan:PlanAdapter",
}

BINARY_SIZES: frozenset[str] = frozenset({"airalo", "1nce"})
"""Built-in adapters whose provider counts data in 1024s (each class's `sizes` says so too;
a test keeps the two in step). Kept here so showing a size never imports an HTTP client."""

T = TypeVar("T")


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdapterContext:
    """What adapters share across lines and checks: clients, sessions, a token cache that
    outlives restarts (Airalo allows three token requests a minute), and the redactor."""

    def __init__(
        self,
        tokens: TokenCache | None = None,
        secrets: Iterable[str] = (),
        tz: tzinfo = UTC,
        database: Path | None = None,
    ) -> None:
        self._shared: dict[Any, Any] = {}
        self.tz = tz
        self.database = database
        """The history database, beside which locks shared with other processes live (a
        modem's session lock)."""
        """`[monitor] timezone`: where a declared date (a plan's renewal day) falls."""
        self._lock = threading.Lock()
        self.tokens = tokens or TokenCache(None)
        self.redactor = Redactor(secrets)
        """Every configured secret and every fetched token: what leaves an adapter
        (readings, failures, log lines) passes through it."""

    def shared(self, key: Any, factory: Callable[[], T]) -> T:
        """One object per key (an account's HTTP session, say), made on first use."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = factory()
            return self._shared[key]

    def abort(self, thread_id: int) -> None:
        """A check running on that thread was abandoned: whatever shared object can end
        its part of it (an HTTP session shuts the check's sockets) does so now."""
        with self._lock:
            items = list(self._shared.values())
        for item in items:
            abort = getattr(item, "abort", None)
            if callable(abort):
                abort(thread_id)

    def close(self) -> None:
        with self._lock:
            for item in self._shared.values():
                close = getattr(item, "close", None)
                if callable(close):
                    close()
            self._shared.clear()


@dataclass(frozen=True)
class AccountRef:
    """A provider account as an adapter sees it: its name and its validated options."""

    name: str
    options: Any


class Adapter(ABC):
    """Reads one line. `read` runs in a worker thread: keep shared state in the context.

    `Options` validates the line's own keys; `AccountOptions`, for providers whose lines
    share credentials, validates an `[accounts.NAME]` table (None: the adapter takes none).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions
    AccountOptions: ClassVar[type[BaseModel] | None] = None
    max_concurrency: ClassVar[int | None] = None
    """Checks of one account in flight at once, under the provider's documented limit;
    None: `[monitor] account_concurrency`."""
    sizes: ClassVar[Sizes] = "decimal"
    """How the provider counts a "GB" (its own app's convention): sizes of this line are shown
    in it, and a threshold of "1GB" means the provider's GB."""
    min_interval: ClassVar[timedelta | None] = None
    """Checking more often than this gains nothing (a provider's server-side cache, say):
    `config validate` warns about lines with a shorter interval."""
    min_interval_why: ClassVar[str] = "answers from a {minimum} server-side cache"
    """Why, as the warning says it (`{minimum}`: min_interval in words)."""

    @classmethod
    def reports(cls, options: Any) -> frozenset[str] | None:
        """The metrics (`balance`, `data`, `expiry`, `renewal`) a line with these validated
        options reads, so `config validate` can warn when no threshold watches one; None
        when that rests on what the provider answers (a program's output, patterns)."""
        return None

    def __init__(
        self,
        line_id: str,
        options: Any,
        context: AdapterContext,
        account: AccountRef | None = None,
    ) -> None:
        self.line_id = line_id
        self.options = options
        self.context = context
        self.account = account

    @abstractmethod
    def read(self) -> Reading:
        """The line's figures now; raise CheckFailed (never a zero) when they cannot be read."""

    supports_top_up: ClassVar[bool] = False
    """Whether `top_up` buys something (the recharge `provider` action)."""

    @classmethod
    def top_up_problems(cls, package: str | None, amount: Any) -> list[str]:
        """What is wrong with a line's `package`/`amount` for this provider's top-ups
        (checked at config time). By default one of the two must be set."""
        return [] if package or amount is not None else ["set `package` (or `amount`) to buy"]

    def top_up(self, request: TopUpRequest) -> TopUpResult:
        """Buy the request's package or amount, once. Raise TopUpFailed when nothing was
        bought, TopUpUnknown when the outcome is unknown; never retry a call that spends."""
        raise TopUpFailed(f"the {self.name} adapter cannot top a line up")

    def find_top_up(self, request: TopUpRequest) -> TopUpResult | None:
        """After a crash between intent and outcome: was this request carried out? None
        when it surely was not; TopUpUnknown when the provider cannot tell."""
        raise TopUpUnknown(f"the {self.name} adapter cannot look up past top-ups")

    subscribes_webhooks: ClassVar[bool] = False
    """Whether the provider has an API to register a webhook URL (`hooks subscribe`);
    the others are set up in the provider's portal."""

    def subscribe_webhooks(self, url: str) -> list[HookSubscription]:
        """Register `url` for every kind of notification the monitor reads from this
        provider; one result per kind, a refusal in its `error`. Called on an adapter
        built for the account (`build_account`), not for a line."""
        raise NotImplementedError(f"the {self.name} adapter cannot register webhooks")


class UnknownAdapter(KeyError):
    pass


def available() -> dict[str, str]:
    """Every installed adapter: name -> "module:Class"."""
    found = dict(BUILTIN)
    for name, target in _entry_points():
        found.setdefault(name, target)
    return found


@functools.cache
def _entry_points() -> tuple[tuple[str, str], ...]:
    """Third-party adapters, read once per process: scanning the installed distributions
    costs milliseconds, and a cycle builds thousands of lines."""
    return tuple((ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP))


def load(name: str) -> type[Adapter]:
    target = available().get(name)
    if target is None:
        raise UnknownAdapter(name)
    module, _, attr = target.partition(":")
    cls = getattr(import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{target} is not an esim-monitor Adapter")
    return cls


def line_sizes(settings: Settings, line_id: str) -> Sizes:
    """The size convention of a line: its own `sizes` key, else its adapter's."""
    line = settings.lines[line_id]
    if line.sizes is not None:
        return line.sizes
    name = settings.adapter_name(line_id)
    if name in BUILTIN:
        return "binary" if name in BINARY_SIZES else "decimal"
    try:
        return load(name).sizes
    except (UnknownAdapter, ImportError, AttributeError, TypeError):
        return "decimal"


def build(
    settings: Settings,
    line_id: str,
    context: AdapterContext,
    accounts: dict[str, AccountRef] | None = None,
) -> Adapter:
    """The adapter for a line, its options validated (config validation already did).
    `accounts` keeps each account's validated options for the next line of the same
    account (they are frozen): 10,000 lines of one account held 10,000 copies, 15 MB."""
    line = settings.lines[line_id]
    cls = load(settings.adapter_name(line_id))
    account = None
    if line.account is not None and cls.AccountOptions is not None:
        account = accounts.get(line.account) if accounts is not None else None
        if account is None:
            options = settings.accounts[line.account].options
            account = AccountRef(line.account, cls.AccountOptions.model_validate(options))
            if accounts is not None:
                accounts[line.account] = account
    return cls(line_id, cls.Options.model_validate(line.options), context, account)


def build_account(settings: Settings, account: str, context: AdapterContext) -> Adapter:
    """The adapter of an account itself, for what a provider does per account rather than
    per line (registering webhooks): built as a line without options, named after the
    account's table."""
    table = settings.accounts[account]
    cls = load(table.provider)
    ref = None
    if cls.AccountOptions is not None:
        ref = AccountRef(account, cls.AccountOptions.model_validate(table.options))
    return cls(f"accounts.{account}", cls.Options.model_construct(), context, ref)


def validate_lines(settings: Settings) -> Iterable[ConfigProblem]:
    """Config-time check: every account and line names an installed adapter, and gives it
    options it accepts."""
    names = available()
    for name, account in settings.accounts.items():
        where = f"accounts.{name}.provider"
        cls = yield from _loaded(account.provider, names, where)
        if cls is None:
            continue
        if cls.AccountOptions is None:
            yield ConfigProblem(where, f"adapter {account.provider!r} takes no account")
            continue
        try:
            cls.AccountOptions.model_validate(account.options)
        except ValidationError as exc:
            yield from problems_from(
                exc, ("accounts", name), cls.AccountOptions, Account.model_fields
            )
    for line_id, line in settings.lines.items():
        if line.adapter is None and line.account is None:
            continue  # reported by the config itself
        if line.account is not None and line.account not in settings.accounts:
            continue
        where = f"lines.{line_id}.adapter" if line.adapter else f"lines.{line_id}.account"
        cls = yield from _loaded(settings.adapter_name(line_id), names, where)
        if cls is None:
            continue
        if cls.AccountOptions is not None and line.account is None:
            yield ConfigProblem(
                f"lines.{line_id}",
                f"adapter {cls.name!r} reads through an account: set `account` to an "
                f"[accounts.NAME] table with provider = {cls.name!r}",
            )
            continue
        try:
            cls.Options.model_validate(line.options)
        except ValidationError as exc:
            yield from problems_from(exc, ("lines", line_id), cls.Options, Line.model_fields)
        recharge = line.recharge
        if recharge is not None and recharge.action == "provider":
            where = f"lines.{line_id}.recharge"
            if not cls.supports_top_up:
                yield ConfigProblem(
                    f"{where}.action", f"the {cls.name} adapter cannot top a line up"
                )
            else:
                for message in cls.top_up_problems(recharge.package, recharge.amount):
                    yield ConfigProblem(f"{where}.package", message)


def _loaded(
    name: str, names: dict[str, str], where: str
) -> Generator[ConfigProblem, None, type[Adapter] | None]:
    if name not in names:
        yield ConfigProblem(
            where, f"unknown adapter {name!r}; installed: {', '.join(sorted(names))}"
        )
        return None
    try:
        return load(name)
    except (ImportError, AttributeError, TypeError) as exc:
        yield ConfigProblem(where, f"adapter {name!r} cannot be loaded: {exc}")
        return None


def reading_metrics(reading: Reading) -> frozenset[str]:
    """The metrics a reading gives, by the names `Adapter.reports` uses."""
    given = {
        "balance": reading.balance is not None,
        "data": reading.data_remaining is not None,
        "expiry": reading.expires_at is not None,
        "renewal": reading.renewal_at is not None and reading.renewal_price is not None,
    }
    return frozenset(metric for metric, yes in given.items() if yes)


def threshold_warnings(settings: Settings) -> Iterable[ConfigProblem]:
    """Lines none of whose thresholds (nor expiry reminders) watch a metric the adapter
    reads for them: such a line never alerts but for failures. Lines that also take
    readings from a phone (relay) may get any metric, so they are not judged."""
    for line_id, line in settings.lines.items():
        if line.relay_preset is not None or line.relay_patterns:
            continue
        try:
            cls = load(settings.adapter_name(line_id))
            reports = cls.reports(cls.Options.model_validate(line.options))
        except (UnknownAdapter, ImportError, AttributeError, TypeError, ValidationError):
            continue
        if not reports:
            continue
        t = settings.thresholds(line_id)
        watched = {
            "balance": t.balance_warning is not None or t.balance_critical is not None,
            "data": t.data_warning is not None or t.data_critical is not None,
            "expiry": t.expiry_warning is not None
            or t.expiry_critical is not None
            or bool(settings.alerts(line_id).expiry_reminders),
            "renewal": t.renewal_warning is not None,
        }
        if t.forecast is not None:
            watched["balance"] = watched["data"] = watched["expiry"] = True
        if any(watched[metric] for metric in reports):
            continue
        named = sorted(reports)
        yield ConfigProblem(
            f"lines.{line_id}.thresholds",
            f"no threshold watches what {cls.name} reads for this line ({', '.join(named)}): "
            f"it alerts only on failed checks; set {' or '.join(f'{m}_warning' for m in named)} "
            "here or in [defaults.thresholds]",
        )


def interval_warnings(settings: Settings) -> Iterable[ConfigProblem]:
    """Lines checked more often than their provider can answer anew (Airalo caches usage
    for 20 minutes): not errors, but polling that only spends rate limit."""
    for line_id in settings.lines:
        try:
            cls = load(settings.adapter_name(line_id))
        except (UnknownAdapter, ImportError, AttributeError, TypeError):
            continue
        interval = settings.interval(line_id)
        if cls.min_interval is not None and interval < cls.min_interval:
            why = cls.min_interval_why.format(minimum=format_duration(cls.min_interval))
            yield ConfigProblem(
                f"lines.{line_id}.interval",
                f"{cls.name} {why}; checking every {format_duration(interval)} gains nothing",
            )
