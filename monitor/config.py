"""Load and validate the one TOML config file (pydantic-settings over TOML).

Precedence, highest first: environment (`ESIM_MONITOR_` prefix, `__` nesting), credential
files (systemd's `$CREDENTIALS_DIRECTORY`, names like `channels__phone__url`), the TOML file.
Every problem is collected and reported at once, each with the file and its key path.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import stat
import tomllib
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources import NestedSecretsSettingsSource

import monitor
from monitor.errors import ConfigError, ConfigProblem, UnitError
from monitor.markup import BodyFormat
from monitor.model import EVENT_TYPES, OPT_IN_EVENTS, money_problem
from monitor.redact import Redactor, url_secrets
from monitor.units import (
    DigestSchedule,
    Percent,
    QuietHours,
    Size,
    Sizes,
    format_duration,
    format_size,
    parse_data_size,
    parse_data_threshold,
    parse_digest,
    parse_duration,
    parse_money,
    parse_quiet_hours,
    parse_size,
)

DEFAULT_CONFIG = Path(monitor.DEFAULT_CONFIG)
ENV_PREFIX = monitor.ENV_PREFIX
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
RESERVED_LINE_IDS: Mapping[str, str] = {"history": "esim-monitor recharge history"}
"""Words a command takes where it takes a line id: a line of that name could not be named
there (`recharge history` lists the ledger; it cannot also recharge a line `history`)."""


def config_money(value: object) -> Decimal:
    """Money in the config, within the same bounds as a provider's figure (below 10^12,
    exactly held): 1e999999999 hung the daemon in decimal arithmetic."""
    amount = parse_money(value)
    problem = money_problem(amount)
    if problem:
        raise UnitError(f"{value!r} {problem}")
    return amount


def _unit(parser: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap a unit parser so its message reaches the user without pydantic's decoration."""

    def validate(value: Any) -> Any:
        try:
            return parser(value)
        except UnitError as exc:
            raise ValueError(str(exc)) from None

    return validate


def _positive(delta: timedelta) -> timedelta:
    if delta <= timedelta(0):
        raise ValueError("must be longer than zero")
    return delta


def _at_most_an_hour(delta: timedelta) -> timedelta:
    if delta > timedelta(hours=1):
        raise ValueError("must be at most 1h: a group's first alert waits this long")
    return delta


Duration = Annotated[timedelta, BeforeValidator(_unit(parse_duration))]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
DataSize = Annotated[int, BeforeValidator(_unit(parse_data_size))]
Money = Annotated[Decimal, BeforeValidator(_unit(config_money))]
DataThreshold = Annotated[
    Size | Percent,
    BeforeValidator(_unit(parse_data_threshold)),
    PlainSerializer(lambda v: str(v) if isinstance(v, Percent) else int(v)),
]
EventName = Literal[EVENT_TYPES]  # type: ignore[valid-type]
QuietHoursSetting = Annotated[
    QuietHours | None,
    BeforeValidator(_unit(parse_quiet_hours)),
    PlainSerializer(lambda q: str(q) if q else "off"),
]


def _hysteresis(value: Any) -> Decimal:
    text = str(value).strip().rstrip("%")
    share = config_money(text) / 100
    if not 0 <= share <= Decimal("0.5"):
        raise ValueError("hysteresis must be between 0% and 50%")
    return share


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)


class Thresholds(_Strict):
    """When a metric is low. A metric is warning at or below `*_warning`, critical at or below
    `*_critical`. Unset thresholds are inherited from `[defaults.thresholds]`."""

    balance_warning: Money | None = None
    balance_critical: Money | None = None
    data_warning: DataThreshold | None = None
    data_critical: DataThreshold | None = None
    expiry_warning: Duration | None = timedelta(days=3)
    expiry_critical: Duration | None = timedelta(days=1)
    forecast: Duration | None = None
    """Warn when the line will run out of money or data within this (from its recent use),
    or before its plan expires or renews."""
    renewal_warning: Duration | None = timedelta(days=3)
    """For lines that report a renewal date and price: warn this long before a renewal
    that the balance will not cover."""
    hysteresis: Annotated[
        Decimal,
        BeforeValidator(_unit(_hysteresis)),
        PlainSerializer(lambda share: f"{(share * 100).normalize():f}%"),
    ] = Decimal("0.05")
    """A low metric clears only once it is this share above its threshold, so it cannot flap."""

    def merged(self, override: Thresholds | None) -> Thresholds:
        if override is None:
            return self
        return self.model_copy(
            update={name: getattr(override, name) for name in override.model_fields_set}
        )


class Alerts(_Strict):
    """How a line's alerts behave; `[lines.ID.alerts]` overrides single keys."""

    repeat: Duration = timedelta(hours=24)
    """Remind every this long while a line stays low; "0s" turns reminders off."""
    failures_before_alert: int = Field(default=3, ge=1)
    expiry_reminders: list[PositiveDuration] = []
    """Send an `expiry` event this long before the plan expires, once per offset and date."""
    escalate_after: PositiveDuration | None = None
    """A critical not acknowledged within this also goes to `escalate_to`."""
    escalate_to: list[str] = []

    def merged(self, override: Alerts | None) -> Alerts:
        if override is None:
            return self
        return self.model_copy(
            update={name: getattr(override, name) for name in override.model_fields_set}
        )


class DefaultAlerts(Alerts):
    """`[defaults.alerts]`: the line keys, plus the channels' default quiet hours."""

    quiet_hours: QuietHoursSetting = None
    urgent: list[EventName] = ["critical"]
    """Event types that go through quiet hours."""


class Defaults(_Strict):
    thresholds: Thresholds = Thresholds()
    alerts: DefaultAlerts = DefaultAlerts()


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin')"
        ) from None
    return value


def _metrics_address(value: str | None) -> str | None:
    if value is not None:
        from monitor.errors import MonitorError
        from monitor.units import parse_address

        try:
            parse_address(value)
        except MonitorError as exc:
            raise ValueError(str(exc)) from None
    return value


def _password_hash(value: SecretStr | None) -> SecretStr | None:
    """A hash `esim-monitor http password` printed; the value itself is never echoed."""
    from monitor.http.auth import valid_hash

    if value is not None and not valid_hash(value.get_secret_value()):
        raise ValueError(
            "not a password hash: paste what `esim-monitor http password` prints "
            "(it starts with $scrypt$)"
        )
    return value


def _http_url(value: SecretStr | None) -> SecretStr | None:
    """An http(s) URL, checked without echoing it (it is a secret)."""
    if value is not None and not re.match(r"https?://[^/\s]+", value.get_secret_value()):
        raise ValueError("must be an http:// or https:// URL")
    return value


class MonitorSettings(_Strict):
    interval: PositiveDuration = timedelta(minutes=30)
    jitter: Duration = timedelta(0)
    """Each check runs at the interval plus or minus up to this (at most half the interval)."""
    database: Path | None = None
    timezone: Annotated[str | None, AfterValidator(_timezone)] = None
    workers: int = Field(default=64, ge=1, le=1024)
    """How many lines are read at the same time."""
    account_concurrency: int = Field(default=64, ge=1, le=1024)
    """Checks of one account in flight at once, where its provider publishes no limit
    (generous: accounts take turns for workers, so one cannot starve the others)."""
    breaker_after: int = Field(default=5, ge=0)
    """Failed checks in a row on one account before its checks pause (0: never)."""
    check_timeout: PositiveDuration = timedelta(seconds=60)
    """Hard deadline of one check; past it the check fails and its worker is abandoned."""
    keep_readings: PositiveDuration = timedelta(days=400)
    """Raw readings are kept this long; older ones are rolled up per line and day."""
    metrics: Annotated[str | None, AfterValidator(_metrics_address)] = None
    """host:port of an optional Prometheus endpoint, such as "127.0.0.1:9464"."""
    heartbeat_url: Annotated[SecretStr | None, AfterValidator(_http_url)] = None
    """Fetched after every completed cycle (Healthchecks.io, Uptime Kuma push URL)."""
    heartbeat_timeout: PositiveDuration = timedelta(seconds=10)
    notify_timeout: PositiveDuration = timedelta(seconds=30)
    """Upper bound of one delivery attempt to one channel."""


def _rate(value: object) -> Rate:
    if isinstance(value, Rate):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*", str(value))
    if not match or int(match[1]) < 1:
        raise UnitError(f"cannot read {value!r} as a rate: use '60/min', '5/s' or '600/hour'")
    seconds = {"s": 1, "m": 60, "h": 3600}[match[2][0]]
    return Rate(int(match[1]), float(seconds))


@dataclass(frozen=True)
class Rate:
    """Requests allowed per period, per source address."""

    count: int
    per: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "hour"}[self.per]
        return f"{self.count}/{unit}"


def _public_url(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
        raise ValueError("must be an http:// or https:// URL without a query")
    return value.rstrip("/") if value is not None else None


def _proxy_network(value: object) -> object:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is no address: write it as a string, such as '10.0.0.0/8'")
    from monitor.http.proxies import network  # stdlib only

    return network(value)


ProxyNetwork = Annotated[
    IPv4Network | IPv6Network, BeforeValidator(_proxy_network), PlainSerializer(str)
]
"""A trusted proxy: an address ("127.0.0.1") or a CIDR network ("10.0.0.0/8")."""


class HttpSettings(_Strict):
    """`[http]`: the embedded server for the phone relay (off unless `listen` is set)."""

    listen: Annotated[str | None, AfterValidator(_metrics_address)] = None
    """host:port to serve on, such as "127.0.0.1:8750"; behind a reverse proxy for TLS."""
    public_url: Annotated[str | None, AfterValidator(_public_url)] = None
    """Where the world reaches the server (the proxy's https URL): the base of relay URLs."""
    max_body: Annotated[Size, BeforeValidator(_unit(parse_size))] = Size(4 * 2**20)
    """Largest request body; a larger one is refused with 413 before it is read."""
    replay_window: PositiveDuration = timedelta(minutes=5)
    """How old a signed request's timestamp may be (provider hooks that sign one)."""
    rate: Annotated[Rate, BeforeValidator(_unit(_rate)), PlainSerializer(str)] = Rate(60, 60.0)
    """Requests per source address; past it, 429 with Retry-After."""
    timeout: PositiveDuration = timedelta(seconds=30)
    """A connection idle this long (a slow client) is closed."""
    threads: int = Field(default=4, ge=1, le=64)
    trusted_proxies: list[ProxyNetwork] = []
    """Peers whose X-Forwarded-For names the client (the rate limit's source and the access
    log's address; monitor.http.proxies); from any other peer the header is ignored."""
    link_expiry: PositiveDuration = timedelta(days=7)
    """How long an alert's signed action links (`{ack_url}`, `{snooze_url}`) work."""
    auth: Literal["password", "proxy", "none"] = "password"
    """Who may see the status page and its API: `user` with `password_hash`; the user a
    reverse proxy names in `proxy_user_header`; or anyone (a loopback `listen` only). The
    relay and the webhooks keep their own tokens and signatures whatever this says."""
    user: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[^:\s]+$")
    """auth = "password": the user name to log in with."""
    password_hash: Annotated[SecretStr | None, AfterValidator(_password_hash)] = None
    """auth = "password": what `esim-monitor http password` prints (never the password)."""
    proxy_user_header: str = Field(default="Remote-User", pattern=r"^[A-Za-z0-9-]{1,64}$")
    """auth = "proxy": the header in which the proxy names the user it logged in."""
    session_expiry: PositiveDuration = timedelta(days=7)
    """How long a login lasts."""

    def login_missing(self) -> str | None:
        """Why the page cannot be logged in to yet (auth = "password" without a user or
        its hash); the relay and webhooks work on regardless."""
        if self.auth != "password" or (self.user is not None and self.password_hash):
            return None
        return (
            "the status page has no login yet: set [http] user, and password_hash to what "
            "`esim-monitor http password` prints"
        )


ALERTMANAGER_ONLY = ("repost", "user", "password", "token", "labels")
"""Channel keys of `type = "alertmanager"` alone."""
APPRISE_ONLY = (
    "format",
    "title",
    "body",
    "body_format",
    "quiet_hours",
    "urgent",
    "digest",
    "digest_chart",
    "group",
    "group_wait",
)
"""Channel keys about messages, which an Alertmanager channel does not send."""
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""Prometheus' label name syntax (Alertmanager refuses an alert with another)."""


class Channel(_Strict):
    type: Literal["apprise", "alertmanager"] = "apprise"
    """What `url` is: an Apprise URL (messages per event), or an Alertmanager that is
    given each line's state (monitor.alertmanager)."""
    url: SecretStr
    """Any Apprise URL; secret because most carry tokens. For an Alertmanager, its base URL."""
    events: list[EventName] = Field(
        default_factory=lambda: [e for e in EVENT_TYPES if e not in OPT_IN_EVENTS]
    )
    """Every event type but the opt-in ones (`relay`: texts forwarded from a phone)."""
    lines: list[str] | None = None
    """Only these lines; every line when unset."""
    format: Literal["full", "short"] = "full"
    """Default templates: "full" for email and chat, "short" for SMS."""
    title: str | None = None
    body: str | None = None
    body_format: BodyFormat = "text"
    """What the `body` template is written in: "text", "html" or "markdown". Values put into
    an html or markdown template are escaped for it; without a `body` the message is text."""
    quiet_hours: QuietHoursSetting = None
    """Hold events during this daily window ("off" for none); default from [defaults.alerts]."""
    urgent: list[EventName] | None = None
    digest: Annotated[
        DigestSchedule | None,
        BeforeValidator(_unit(parse_digest)),
        PlainSerializer(lambda d: str(d) if d else "off"),
    ] = None
    """A summary at a set time: "daily 08:00" or "weekly mon 08:00"."""
    digest_chart: bool = True
    """Attach a PNG chart to the digest (needs the `charts` extra)."""
    repost: PositiveDuration | None = None
    """alertmanager: re-post active alerts this often (default 1m); each says it ends 4
    reposts later, so the alerts of an instance that dies resolve by themselves."""
    user: str | None = None
    """alertmanager: HTTP basic auth user (with `password`)."""
    password: SecretStr | None = None
    token: SecretStr | None = None
    """alertmanager: a bearer token (instead of basic auth)."""
    labels: dict[str, str] | None = None
    """alertmanager: labels added to every alert (like Prometheus' external_labels), so
    the alerts of several instances stay apart (`shard = "eu-1"`)."""
    group: bool = True
    """Events of one type that become due within `group_wait` go out as one message."""
    group_wait: Annotated[Duration, AfterValidator(_at_most_an_hour)] = timedelta(seconds=30)
    """How long the first event of a group waits for others (`run --once` does not wait)."""

    def wants(self, event_type: str, line: str) -> bool:
        return event_type in self.events and (self.lines is None or line in self.lines)


class Account(BaseModel):
    """Credentials shared by the lines of one provider account. Keys other than these are
    the provider's own (client_id, api_key, ...), validated by its adapter."""

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str = Field(min_length=1)

    def __repr_args__(self) -> Any:
        """Provider credentials are plain extras here: keep them out of reprs and tracebacks."""
        for key, value in super().__repr_args__():
            yield key, SECRET_MASK if isinstance(key, str) and SECRET_KEY.search(key) else value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@dataclass(frozen=True)
class Trigger:
    """When a line needs a top-up: at a state ("critical"), or a metric below a value."""

    state: str | None = None
    metric: str | None = None
    limit: Decimal | Size | timedelta | None = None

    def __str__(self) -> str:
        if self.state:
            return self.state
        limit = self.limit
        text = format_duration(limit) if isinstance(limit, timedelta) else f"{limit}"
        return f"{self.metric} < {text}"


def parse_trigger(value: object) -> Trigger:
    """ "critical", "warning", "balance < 5", "data < 300MB", "expiry < 2d"."""
    if isinstance(value, Trigger):
        return value
    text = str(value).strip().lower()
    if text in ("critical", "warning"):
        return Trigger(state=text)
    match = re.fullmatch(r"(balance|data|expiry)\s*<\s*(.+)", text)
    if not match:
        raise UnitError(
            f"cannot read {value!r} as a recharge condition: use 'critical', 'warning', "
            "'balance < 5', 'data < 300MB' or 'expiry < 2d'"
        )
    metric, limit = match.groups()
    parse = {"balance": config_money, "data": parse_size, "expiry": parse_duration}[metric]
    return Trigger(metric=metric, limit=parse(limit.strip().upper() if metric == "data" else limit))


class Recharge(_Strict):
    """`[lines.ID.recharge]`: when and how the daemon tops a line up itself, within caps."""

    when: Annotated[Trigger, BeforeValidator(_unit(parse_trigger)), PlainSerializer(str)] = Trigger(
        state="critical"
    )
    action: Literal["provider", "apprise", "webhook", "command", "ussd-pin"]
    package: str | None = None
    """What the provider sells (provider action), such as an Airalo top-up package id."""
    amount: Money | None = None
    """Or an amount of money to add, where the action takes one."""
    price: Money | None = None
    """What one top-up costs, when the action cannot say (for max_spend_per_month)."""
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    max_per_day: int = Field(default=1, ge=0)
    max_per_month: int = Field(default=4, ge=0)
    max_spend_per_month: Money | None = None
    cooldown: Duration = timedelta(hours=6)
    dry_run: bool = False
    verify_within: PositiveDuration = timedelta(hours=2)
    """A later reading must show the line went up within this, or `recharge-unconfirmed`."""
    timeout: PositiveDuration = timedelta(seconds=30)
    url: SecretStr | None = None
    """apprise: any Apprise URL; webhook: the https URL to POST to."""
    secret: SecretStr | None = None
    """webhook: the HMAC-SHA256 key that signs the body."""
    argv: list[str] | None = None
    """command: the program and its arguments, run without a shell."""
    pins: SecretStr | None = None
    """ussd-pin: refill PINs, separated by commas, spaces or new lines; each used once."""
    code: str = "*888*{pin}#"
    """ussd-pin: the USSD code that redeems a PIN (AT&T's by default)."""
    modem: str | None = None
    """ussd-pin: the modem (IMEI or ICCID); default: the line's own `modem`."""


class RechargeSwitch(_Strict):
    enabled: bool = False
    """Nothing is ever bought until this is true."""


class Line(BaseModel):
    """A line to watch. Keys not listed here are the adapter's own options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    adapter: str | None = Field(default=None, min_length=1)
    """Which adapter reads the line; implied by `account` (its provider) when that is set."""
    account: str | None = Field(default=None, min_length=1)
    label: str | None = None
    interval: PositiveDuration | None = None
    payment_url: str | None = None
    sizes: Sizes | None = None
    """Whether this line's provider counts a GB in 1000s or 1024s, where its adapter cannot
    say (an `http_json` or `command` line); by default the adapter's own convention."""
    thresholds: Thresholds | None = None
    alerts: Alerts | None = None
    recharge: Recharge | None = None
    relay_senders: list[str] | None = None
    """Only texts from these senders are taken by the phone relay (any, when unset)."""
    relay_patterns: list[str] = []
    """Regexes (named groups as USSD patterns) that read this line's relayed texts."""
    relay_preset: str | None = None
    """An SMS preset (monitor.adapters.sms_replies) for this line's relayed texts."""

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def __repr_args__(self) -> Any:
        """Adapter options may hold secrets (an `env` table, a token): not in reprs."""
        for key, value in super().__repr_args__():
            secret = isinstance(key, str) and (key == "env" or SECRET_KEY.search(key))
            yield key, SECRET_MASK if secret and value is not None else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        secrets_prefix="",
        secrets_dir_missing="ok",
        arbitrary_types_allowed=True,
    )

    monitor: MonitorSettings = MonitorSettings()
    http: HttpSettings = HttpSettings()
    recharge: RechargeSwitch = RechargeSwitch()
    defaults: Defaults = Defaults()
    accounts: dict[str, Account] = {}
    channels: dict[str, Channel] = {}
    lines: dict[str, Line] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init arguments; it must lose to the environment and to
        # credential files, so it goes last.
        return env_settings, NestedSecretsSettingsSource(file_secret_settings), init_settings

    def adapter_name(self, line_id: str) -> str:
        line = self.lines[line_id]
        if line.adapter:
            return line.adapter
        assert line.account is not None  # structural_problems guarantees one of the two
        return self.accounts[line.account].provider

    def label(self, line_id: str) -> str:
        return self.lines[line_id].label or line_id

    def thresholds(self, line_id: str) -> Thresholds:
        return self.defaults.thresholds.merged(self.lines[line_id].thresholds)

    def alerts(self, line_id: str) -> Alerts:
        return self.defaults.alerts.merged(self.lines[line_id].alerts)

    def quiet_hours(self, channel: str) -> QuietHours | None:
        ch = self.channels[channel]
        if "quiet_hours" in ch.model_fields_set:
            return ch.quiet_hours
        return self.defaults.alerts.quiet_hours

    def urgent(self, channel: str) -> list[str]:
        ch = self.channels[channel]
        return list(ch.urgent if ch.urgent is not None else self.defaults.alerts.urgent)

    def interval(self, line_id: str) -> timedelta:
        return self.lines[line_id].interval or self.monitor.interval

    def jitter(self, line_id: str) -> timedelta:
        return min(self.monitor.jitter, self.interval(line_id) / 2)

    def tz(self) -> tzinfo:
        if self.monitor.timezone:
            return zoneinfo.ZoneInfo(self.monitor.timezone)
        return datetime.now().astimezone().tzinfo or zoneinfo.ZoneInfo("UTC")

    def database_path(self) -> Path:
        return self.monitor.database or default_database()


def default_database() -> Path:
    """`$STATE_DIRECTORY` under systemd, else the user's XDG state directory."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / "history.db"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "esim-monitor" / "history.db"


def config_path(cli_value: str | None) -> Path:
    """`--config`, else `$ESIM_MONITOR_CONFIG`, else /etc/esim-monitor/config.toml."""
    return Path(cli_value or os.environ.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG)


Validator = Callable[[Settings], Iterable[ConfigProblem]]


MAX_EXPONENT = 40
"""No setting needs a number past 10^40 or below 10^-40; such a one is refused at once,
since turning it into an integer (a count such as `max_per_day`) takes a Decimal context
minutes of arithmetic (the config fuzz found `max_per_day = 1e-999999999` hanging `load`)."""


UNLOADED_SECRET = "http://secret-not-loaded.invalid/"
"""What a channel's absent `url` reads as in a config loaded without its secrets: an
address that cannot resolve (RFC 6761's `.invalid`), never one that sends anywhere."""


def load(path: Path, validators: Iterable[Validator] = (), *, secrets: bool = True) -> Settings:
    """Read, validate and return the settings; raise ConfigError listing every problem.

    `validators` are further checks by the modules that own the meaning (adapter options,
    Apprise URLs). A key pydantic refuses is left out for the checks of the rest, so
    one typo does not hide the other problems. Without `secrets`
    (for the commands that send nothing, with the service's credentials out of reach), a
    secret that is absent (a channel's `url`, a recharge `secret`, an unreadable
    credentials folder) is no problem; everything else is checked as ever.
    """
    source = str(path)
    text = _read_config(path)
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [ConfigProblem("", f"TOML syntax error: {exc}")]) from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise ConfigError(source, [ConfigProblem("", f"TOML number refused: {exc}")]) from None
    except RecursionError:
        raise ConfigError(source, [ConfigProblem("", "TOML nested too deeply")]) from None
    shape = _shape_problems(data)
    if shape:
        raise ConfigError(source, shape)
    problems = list(_id_problems(data))
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if not secrets:
        data = _with_unloaded_urls(data)
    # key paths pydantic refused, left out so that the rest is checked all the same
    left_out: list[str] = []
    try:
        try:
            settings = _settings(data, credentials, secrets)
        except ValidationError as exc:
            problems.extend(problems_from(exc, model=Settings))
            rest = _despite(data, exc, credentials, secrets, left_out)
            if rest is None:
                raise ConfigError(source, problems) from None
            settings = rest
    except (OSError, SettingsError) as exc:
        problems.append(ConfigProblem("", f"cannot read the credentials in {credentials}: {exc}"))
        raise ConfigError(source, problems) from None
    except (ArithmeticError, RecursionError) as exc:
        # a value no unit parser caught (a decimal signal, a nesting the depth bound missed):
        # still the config's fault, said in one line
        problems.append(
            ConfigProblem("", f"a value this program cannot hold ({type(exc).__name__})")
        )
        raise ConfigError(source, problems) from None

    def new(problem: ConfigProblem) -> bool:
        """Not said already, nor about a key left out (its default stood in for it)."""
        if any(problem.path == p.path for p in problems):
            return False
        return not any(problem.path == k or problem.path.startswith(f"{k}.") for k in left_out)

    problems.extend(
        p
        for p in structural_problems(settings)
        if new(p) and (secrets or not _absent_secret(settings, p.path))
    )
    for validator in validators:
        problems.extend(p for p in validator(settings) if new(p))
    if problems:
        raise ConfigError(source, problems)
    database = settings.monitor.database
    if database is not None and not database.expanduser().is_absolute():
        # A relative database path is taken from the config file's folder, not the cwd.
        monitor = settings.monitor.model_copy(update={"database": path.parent / database})
        settings = settings.model_copy(update={"monitor": monitor})
    elif database is not None:
        monitor = settings.monitor.model_copy(update={"database": database.expanduser()})
        settings = settings.model_copy(update={"monitor": monitor})
    return settings


def _settings(data: dict[str, Any], credentials: str | None, secrets: bool) -> Settings:
    """Settings from the file's `data` and the other sources; without `secrets`, an
    unreadable credentials folder is passed over."""
    try:
        return Settings(_secrets_dir=credentials, **data)
    except (OSError, SettingsError):
        if secrets:
            raise
        return Settings(_secrets_dir=None, **data)


REPAIRS = 4
"""Rounds of leaving refused keys out: a refused table may hide its keys' own problems."""


def _despite(
    data: dict[str, Any],
    exc: ValidationError,
    credentials: str | None,
    secrets: bool,
    left_out: list[str],
) -> Settings | None:
    """Settings from `data` without each key pydantic refused (its default stands in), so
    one typo does not hide every other problem; the paths left out go into `left_out`.
    None when a refused value is not the file's to leave out (a required key, the
    environment's)."""
    data = copy.deepcopy(data)
    for _ in range(REPAIRS):
        for error in exc.errors():
            where = _leave_out(data, error["loc"], error["type"], left_out)
            if where is None:
                return None
            if where not in left_out:
                left_out.append(where)
        try:
            return _settings(data, credentials, secrets)
        except ValidationError as again:
            exc = again
        except (OSError, SettingsError, ArithmeticError, RecursionError):
            return None
    return None


def _file_loc(loc: Iterable[str | int]) -> list[str]:
    """Pydantic's error location as the file's key path: the tagged-union member or
    validator name it appends to some locations left out."""
    return [str(p) for p in loc if not str(p).startswith(("function-", "lax-", "json-"))]


def _leave_out(
    data: dict[str, Any], loc: tuple[str | int, ...], kind: str, left_out: list[str]
) -> str | None:
    """Remove the file's key at pydantic's `loc` (the whole list for an item of one) and
    return its path; a missing channel `url` is filled with UNLOADED_SECRET instead."""
    parts = _file_loc(loc)
    node: Any = data
    path: list[str] = []
    for i, part in enumerate(parts):
        if not isinstance(node, dict):
            break
        if any(".".join([*path, part]) == k for k in left_out):
            return ".".join([*path, part])  # another error of a key already out
        if part not in node:
            missing_url = (
                kind == "missing" and len(parts) == 3 and parts[0] == "channels" and part == "url"
            )
            if i == len(parts) - 1 and missing_url:
                node[part] = UNLOADED_SECRET
                return ".".join([*path, part])
            return None
        if i == len(parts) - 1 or not isinstance(node[part], dict):
            del node[part]
            return ".".join([*path, part])
        path.append(part)
        node = node[part]
    return None


def _with_unloaded_urls(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with UNLOADED_SECRET as the `url` of each channel table that has none: the
    TOML is the lowest source, so the environment or a credential file still wins."""
    channels = data.get("channels")
    if not isinstance(channels, dict):
        return data
    filled = {
        name: {**table, "url": UNLOADED_SECRET}
        if isinstance(table, dict) and "url" not in table
        else table
        for name, table in channels.items()
    }
    return {**data, "channels": filled}


def _absent_secret(settings: Settings, path: str) -> bool:
    """Whether the problem at `path` is about a secret key with no value (a recharge's
    `secret`, an Alertmanager's `password`): what a config loaded without secrets lacks."""
    *parents, key = path.split(".")
    node: Any = settings
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return False
    field = type(node).model_fields.get(key) if isinstance(node, BaseModel) else None
    if field is None or getattr(node, key) is not None:
        return False
    return field.annotation is SecretStr or SecretStr in get_args(field.annotation)


MAX_CONFIG_BYTES = 4 * 2**20
MAX_DEPTH = 32


def _read_config(path: Path) -> str:
    """The file's text, from a regular file only: a FIFO or a device would hang or never end.
    Opened without blocking and checked on the open descriptor, so nothing can swap it."""
    source = str(path)

    def fail(message: str) -> ConfigError:
        return ConfigError(source, [ConfigProblem("", message)])

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise fail("config file not found") from None
    except OSError as exc:
        raise fail(f"cannot read config file: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise fail("not a regular file (a config must be a plain TOML file)")
        if info.st_size > MAX_CONFIG_BYTES:
            raise fail(f"config file is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise fail(f"cannot read config file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_CONFIG_BYTES:
        raise fail(f"config file is larger than {MAX_CONFIG_BYTES // 2**20} MiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(
            f"cannot read config file: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


def _shape_problems(data: Any) -> list[ConfigProblem]:
    """What validation must not meet, by key path, in one walk of the document: a value
    nested past MAX_DEPTH (validation and `config show` recurse), or a number past
    MAX_EXPONENT (turning it into an integer takes a Decimal context minutes)."""
    problems = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, where = stack.pop()
        if len(where) > MAX_DEPTH:
            path = ".".join(where[:4]) + "..."
            return [ConfigProblem(path, f"nested more than {MAX_DEPTH} levels deep")]
        if isinstance(value, Mapping):
            stack.extend((item, (*where, str(key))) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*where, str(i))) for i, item in enumerate(value))
        elif (
            isinstance(value, Decimal)
            and value.is_finite()
            and value
            and abs(value.adjusted()) > MAX_EXPONENT
        ):
            problems.append(
                ConfigProblem(".".join(where), f"{value:.3E} is out of range for any setting")
            )
    return problems


def _id_problems(data: Mapping[str, Any]) -> Iterable[ConfigProblem]:
    """Line and channel ids end up in env names, credential names and URLs: keep them plain."""
    for section in ("lines", "channels", "accounts"):
        table = data.get(section)
        if isinstance(table, Mapping):
            for key in table:
                if not ID_PATTERN.fullmatch(key):
                    yield ConfigProblem(
                        f"{section}.{key}",
                        "ids must be lowercase letters, digits, '-' and '_', "
                        "starting with a letter or digit",
                    )
                elif section == "lines" and key in RESERVED_LINE_IDS:
                    yield ConfigProblem(
                        f"lines.{key}",
                        f"{key!r} is a word of `{RESERVED_LINE_IDS[key]}`, where a line id "
                        "also goes: name the line otherwise (its label can still say "
                        f"{key!r})",
                    )


NEAR = 0.7
"""How alike an unknown key and a known one must be to suggest it (difflib's ratio: a
swapped or missing letter is 0.85 and up; `lines` and `sizes`, 0.6, are no typo)."""


def problems_from(
    exc: ValidationError,
    prefix: tuple[str | int, ...] = (),
    model: type[BaseModel] | None = None,
    also: Iterable[str] = (),
) -> list[ConfigProblem]:
    """Turn pydantic's errors into `At 'a.b.c': message` problems a person can act on. With
    the `model` validated (and `also`, keys a table takes besides its model's), an unknown
    key gets the nearest known one: "did you mean 'interval'?"."""
    problems = []
    for error in exc.errors():
        inner = _file_loc(error["loc"])
        loc = [*(str(part) for part in prefix), *inner]
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
            known = _keys_at(model, inner[:-1]) if model is not None and inner else []
            near = difflib.get_close_matches(inner[-1], [*known, *also], n=1, cutoff=NEAR)
            if near:
                message += f"; did you mean {near[0]!r}?"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(ConfigProblem(".".join(loc), message))
    return problems


def _keys_at(model: type[BaseModel], path: list[str]) -> list[str]:
    """The keys of the table at `path` below `model` (a line id or channel name along the
    way is a dict key), or none when no model describes it."""
    kind: Any = model
    for part in [*path, None]:
        kind = _table_type(kind)
        if part is None:
            break
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(part)
            kind = field.annotation if field is not None else None
        elif get_origin(kind) is dict:
            kind = get_args(kind)[1]
        else:
            return []
    return list(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else []


def _table_type(kind: Any) -> Any:
    """A field's type with Annotated and `| None` taken off: a model, a dict, or other."""
    while True:
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif get_origin(kind) in (Union, UnionType):
            tables = [
                a
                for a in get_args(kind)
                if get_origin(a) is dict or (isinstance(a, type) and issubclass(a, BaseModel))
            ]
            if not tables:
                return kind
            kind = tables[0]
        else:
            return kind


def structural_problems(settings: Settings) -> Iterable[ConfigProblem]:
    """Checks across keys: threshold order, channel line names."""
    yield from _threshold_problems("defaults.thresholds", settings.defaults.thresholds)
    for line_id, line in settings.lines.items():
        if line.thresholds is not None:
            merged = settings.thresholds(line_id)
            yield from _threshold_problems(f"lines.{line_id}.thresholds", merged)
    for line_id, line in settings.lines.items():
        if line.account is not None and line.account not in settings.accounts:
            yield ConfigProblem(
                f"lines.{line_id}.account",
                f"unknown account {line.account!r}; configured: "
                f"{', '.join(settings.accounts) or 'none'}",
            )
        elif line.adapter is None and line.account is None:
            yield ConfigProblem(f"lines.{line_id}", "set `adapter` (or `account`)")
        elif (
            line.adapter is not None
            and line.account is not None
            and line.adapter != settings.accounts[line.account].provider
        ):
            yield ConfigProblem(
                f"lines.{line_id}.adapter",
                f"the line's account {line.account!r} is a "
                f"{settings.accounts[line.account].provider!r} account",
            )
    for where, alerts in [("defaults.alerts", settings.defaults.alerts)] + [
        (f"lines.{line_id}.alerts", line.alerts)
        for line_id, line in settings.lines.items()
        if line.alerts is not None
    ]:
        for name in alerts.escalate_to:
            if name not in settings.channels:
                yield ConfigProblem(f"{where}.escalate_to", f"unknown channel {name!r}")
            elif settings.channels[name].type == "alertmanager":
                yield ConfigProblem(
                    f"{where}.escalate_to",
                    f"channel {name!r} is an Alertmanager: it takes states, not escalations "
                    "(route its critical alerts by their severity label there)",
                )
    for line_id, line in settings.lines.items():
        if line.recharge is not None:
            yield from _recharge_problems(f"lines.{line_id}.recharge", line.recharge, line.options)
    yield from _relay_problems(settings)
    for name, channel in settings.channels.items():
        for line_id in channel.lines or []:
            if line_id not in settings.lines:
                yield ConfigProblem(f"channels.{name}.lines", f"unknown line {line_id!r}")
        yield from _channel_problems(f"channels.{name}", channel)


def _relay_problems(settings: Settings) -> Iterable[ConfigProblem]:
    """A line's relay readers: a known preset, patterns that compile with known groups.
    The reply modules compile dozens of patterns when imported (tens of ms): only a config
    with relay presets or patterns loads them."""
    for line_id, line in settings.lines.items():
        if line.relay_preset is not None:
            from monitor.adapters.sms_replies import preset_names

            if line.relay_preset not in preset_names():
                yield ConfigProblem(
                    f"lines.{line_id}.relay_preset",
                    f"unknown preset {line.relay_preset!r}; available: {', '.join(preset_names())}",
                )
        for i, text in enumerate(line.relay_patterns):
            from monitor.adapters.ussd_replies import compile_pattern

            try:
                compile_pattern(text)
            except ValueError as exc:
                yield ConfigProblem(f"lines.{line_id}.relay_patterns.{i}", str(exc))
    if settings.http.listen is None and settings.http.public_url is not None:
        yield ConfigProblem("http.public_url", "set `listen` too: without it no server runs")
    if settings.http.auth == "proxy" and not settings.http.trusted_proxies:
        yield ConfigProblem(
            "http.auth",
            '"proxy" believes the user header only from `trusted_proxies`: list your proxy',
        )
    if settings.http.auth == "none" and not _loopback(settings.http.listen):
        yield ConfigProblem(
            "http.auth",
            '"none" lets anyone see the page: only with a loopback `listen` such as '
            '"127.0.0.1:8750" (behind a proxy, use auth = "proxy" or "password")',
        )


def _loopback(listen: str | None) -> bool:
    """Whether `listen` takes connections from this machine only."""
    import ipaddress

    from monitor.units import parse_address

    if listen is None:
        return True  # no server runs
    host, _ = parse_address(listen)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


RESERVED_LABELS = ("alertname", "line", "account", "provider", "severity")
"""Labels an Alertmanager channel sets itself on every alert."""
STATE_EVENTS = ("warning", "critical", "failure", "expiry")
"""The event types whose states an Alertmanager channel posts."""


def _channel_problems(path: str, channel: Channel) -> Iterable[ConfigProblem]:
    """Keys that belong to the other channel type, and the Alertmanager keys' own rules."""
    given = channel.model_fields_set
    if channel.type == "apprise":
        for key in ALERTMANAGER_ONLY:
            if key in given:
                yield ConfigProblem(f"{path}.{key}", 'only for type = "alertmanager"')
        return
    for key in APPRISE_ONLY:
        if key in given:
            yield ConfigProblem(
                f"{path}.{key}", 'not used by type = "alertmanager" (it posts states, not messages)'
            )
    url = channel.url.get_secret_value()
    try:
        parts = urlsplit(url)
        userinfo = parts.username is not None or parts.password is not None
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, userinfo, port_ok = None, False, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        yield ConfigProblem(f"{path}.url", "must be an http:// or https:// URL of an Alertmanager")
    elif userinfo:
        yield ConfigProblem(f"{path}.url", "put credentials in `user` and `password`, not the URL")
    elif parts.query or parts.fragment:
        yield ConfigProblem(f"{path}.url", "the Alertmanager's base URL, without a query")
    if (channel.user is None) != (channel.password is None):
        missing = "password" if channel.password is None else "user"
        yield ConfigProblem(f"{path}.{missing}", "basic auth needs both `user` and `password`")
    if channel.token is not None and (channel.user is not None or channel.password is not None):
        yield ConfigProblem(f"{path}.token", "either basic auth (user, password) or a token")
    if not set(channel.events) & set(STATE_EVENTS):
        yield ConfigProblem(
            f"{path}.events",
            "an Alertmanager channel posts the states of " + ", ".join(STATE_EVENTS) + ": name one",
        )
    for name, value in (channel.labels or {}).items():
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            yield ConfigProblem(f"{path}.labels.{name}", "not a Prometheus label name")
        elif name in RESERVED_LABELS:
            yield ConfigProblem(f"{path}.labels.{name}", "set by esim-monitor itself")
        elif not value:
            yield ConfigProblem(f"{path}.labels.{name}", "an empty label value is no label")


_NEEDS = {
    "apprise": ("url",),
    "webhook": ("url", "secret"),
    "command": ("argv",),
    "ussd-pin": ("pins",),
}


def _recharge_problems(
    path: str, r: Recharge, line_options: Mapping[str, Any]
) -> Iterable[ConfigProblem]:
    for key in _NEEDS.get(r.action, ()):
        if getattr(r, key) is None:
            yield ConfigProblem(f"{path}.{key}", f"required for action = {r.action!r}")
    if r.action == "ussd-pin" and "{pin}" not in r.code:
        yield ConfigProblem(f"{path}.code", "the code must hold {pin}")
    if r.action == "ussd-pin" and r.modem is None and "modem" not in line_options:
        yield ConfigProblem(f"{path}.modem", "which modem redeems the PINs (IMEI or ICCID)")
    if r.max_spend_per_month is not None:
        # the cap must be checked before buying: the price of one top-up, and the currency
        # the cap is in, must be known for this line
        for key in ("price", "currency"):
            if getattr(r, key) is None:
                yield ConfigProblem(
                    f"{path}.{key}",
                    "max_spend_per_month needs the price and currency of one top-up",
                )


def _threshold_problems(path: str, t: Thresholds) -> Iterable[ConfigProblem]:
    if (
        t.balance_warning is not None
        and t.balance_critical is not None
        and t.balance_critical > t.balance_warning
    ):
        yield ConfigProblem(
            f"{path}.balance_critical",
            f"critical ({t.balance_critical}) must not be above warning ({t.balance_warning})",
        )
    w, c = t.data_warning, t.data_critical
    if isinstance(w, Percent) and isinstance(c, Percent):
        w, c = w.value, c.value
    if isinstance(w, int | Decimal) and isinstance(c, int | Decimal) and c > w:
        yield ConfigProblem(
            f"{path}.data_critical",
            f"critical ({t.data_critical}) must not be above warning ({t.data_warning})",
        )
    if (
        t.expiry_warning is not None
        and t.expiry_critical is not None
        and t.expiry_critical > t.expiry_warning
    ):
        yield ConfigProblem(
            f"{path}.expiry_critical",
            f"critical ({format_duration(t.expiry_critical)}) must not be longer than "
            f"warning ({format_duration(t.expiry_warning)})",
        )


SECRET_MASK = "**********"


def effective(settings: Settings) -> dict[str, Any]:
    """The settings as plain data in config units, secrets masked: what `config show` prints.
    A secret URL shows its scheme and host only (`tgram://****`), sizes their units."""
    data = _with_sizes(settings, settings.model_dump(exclude_none=True))
    # A line shows what it sets itself; what it inherits is shown once, under [defaults].
    data["lines"] = {
        line_id: _masked_options(_with_sizes(line, line.model_dump(exclude_unset=True)))
        for line_id, line in settings.lines.items()
    }
    data["accounts"] = {
        name: _masked_options(account.model_dump(exclude_unset=True))
        for name, account in settings.accounts.items()
    }
    if not data["accounts"]:
        del data["accounts"]
    # Second wall: a secret repeated under a harmless key (an argv URL, a header) is
    # blotted out too; a URL that hides nothing (an Alertmanager's http://host:port) is
    # shown whole, as its masked form.
    wall = [value for value in secret_values(settings) if masked_url(value) != value]
    return Redactor(wall).data(_plain(data))


def _with_sizes(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    """`dumped` (the model's dump) with each data size written in units, as the model
    holds it (a dump turns a threshold's `Size` into a bare int)."""
    out = dict(dumped)
    for name in type(model).model_fields:
        if name not in out:
            continue
        value = getattr(model, name)
        if isinstance(value, Size):
            out[name] = format_size(value)
        elif isinstance(value, BaseModel) and isinstance(out[name], dict):
            out[name] = _with_sizes(value, out[name])
        elif isinstance(value, dict) and isinstance(out[name], dict):
            out[name] = {
                key: _with_sizes(item, out[name][key])
                if isinstance(item, BaseModel) and isinstance(out[name].get(key), dict)
                else out[name].get(key)
                for key, item in value.items()
                if key in out[name]
            }
    return out


MASK = "****"


def masked_url(url: str) -> str:
    """A secret URL as `config show` prints it: the scheme and, when it is a host name or
    an address (never a token standing where Apprise puts one, as in `tgram://`), the host
    and port; the rest, user and password included, masked
    (`mailto://****@smtp.example.com/****`)."""
    scheme, sep, _ = url.partition("://")
    if not sep or not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", scheme):
        return SECRET_MASK
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return f"{scheme}://{MASK}"
    if host is None or not plain_host(host):
        return f"{scheme}://{MASK}"
    user = f"{MASK}@" if "@" in parts.netloc else ""
    shown = f"[{host}]" if ":" in host else host
    after = f":{port}" if port is not None else ""
    tail = f"/{MASK}" if (parts.path.strip("/") or parts.query or parts.fragment) else ""
    if not tail and (parts.path or parts.query or parts.fragment):
        tail = "/"
    return f"{scheme}://{user}{shown}{after}{tail}"


def plain_host(host: str) -> bool:
    """A DNS name with a top-level domain, `localhost` or an IP address: not a token."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return host == "localhost" or bool(
        re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}", host)
    )


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, by the rules `config show` masks by: `SecretStr` values
    (a URL also by its password and tokens), values of secret-named keys at any depth of
    adapter and account options, `env` tables, and secrets in an `argv`. The cycle, the
    HTTP sessions and `config show` redact them, in every form, from what they pass on."""
    found: list[str] = []
    _collect(settings.model_dump(), "", found)
    return found


def _collect(value: Any, key: str, found: list[str], parent: str = "") -> None:
    if isinstance(value, Mapping):
        for name, item in value.items():
            _collect(item, str(name), found, key)
    elif key == "argv" and isinstance(value, list):
        found.extend(argv_secrets([str(v) for v in value]))
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, key, found, parent)
    elif isinstance(value, SecretStr):
        _add_secret(value.get_secret_value(), found)
    elif isinstance(value, str):
        if parent == "env" or SECRET_KEY.search(key):
            _add_secret(value, found)
        elif "://" in value:
            found.extend(url_credentials(value))


def _add_secret(text: str, found: list[str]) -> None:
    found.append(text)
    if "://" in text:
        found.extend(url_secrets(text))
    elif re.search(r"[,\s]", text.strip()):  # a list of refill PINs
        found.extend(part for part in re.split(r"[,\s]+", text) if part)


def argv_secrets(argv: list[str]) -> list[str]:
    """The secrets in a program's arguments: what follows a secret-named flag
    (`--token X`, `--token=X`), and the password and tokens of a URL argument."""
    found = []
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("-") and SECRET_KEY.search(flag):
            found.append(value)
        elif (
            i
            and argv[i - 1].startswith("-")
            and "=" not in argv[i - 1]
            and SECRET_KEY.search(argv[i - 1])
        ):
            found.append(arg)
        elif "://" in arg:
            found.extend(url_credentials(arg))
    return found


def url_credentials(url: str) -> list[str]:
    """What is secret in an ordinary URL: its password, and secret-named query values
    (`?token=...`); a URL that is a secret as a whole goes through `url_secrets`."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return []
    found = [password, unquote(password)] if password else []
    found += [v for k, v in parse_qsl(parts.query) if SECRET_KEY.search(k)]
    return found


def _masked_options(data: Mapping[str, Any], parent: str = "") -> dict[str, Any]:
    """Adapter and provider keys are unknown to this module: mask, at any depth, every
    value whose key says it is a secret, every value of an `env` table (the command
    adapter hands those to a program), and in an `argv` what follows a secret-named flag."""
    masked: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            masked[key] = _masked_options(value, key)
        elif key == "argv" and isinstance(value, list):
            masked[key] = _masked_argv([str(v) for v in value])
        elif isinstance(value, str) and (parent == "env" or SECRET_KEY.search(key)):
            masked[key] = SECRET_MASK
        else:
            masked[key] = value
    return masked


def _masked_argv(argv: list[str]) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        flag, eq, _ = arg.partition("=")
        if eq and flag.startswith("-") and SECRET_KEY.search(flag):
            out.append(f"{flag}={SECRET_MASK}")
        elif (
            i
            and argv[i - 1].startswith("-")
            and "=" not in argv[i - 1]
            and SECRET_KEY.search(argv[i - 1])
        ):
            out.append(SECRET_MASK)
        else:
            out.append(arg)
    return out


SECRET_KEY = re.compile(r"secret|password|token|key|sid|pin|webhook_user", re.IGNORECASE)
"""Keys whose values are secrets wherever they are (options, argv flags, env tables); a
webhook's user name (1NCE's `webhook_username`) is one, an API's `username` is not."""


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return masked_url(secret) if "://" in secret else SECRET_MASK
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Percent | Path):
        return str(value)
    return value


def dump_toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for `config show`: tables of scalars and lists, as configs are."""
    out: list[str] = []
    _dump_table(out, (), data)
    return "\n".join(out).lstrip("\n") + "\n"


def _dump_table(out: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and (scalars or not tables):
        out.append("")
        out.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    for key, value in scalars.items():
        out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        _dump_table(out, (*path, key), value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
