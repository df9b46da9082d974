"""The generic adapter for any provider with a JSON API: a path template, an auth scheme, and
JMESPath expressions that say where the figures are in the reply.

Credentials live in an `[accounts.NAME]` table (`provider = "http_json"`), never on a line:
the lines of one account share one HTTP session (one connection pool, one place for retries
and rate-limit cool-downs), account keys named like secrets are masked by `config show`,
and each secret can come from the environment or a credential file
(`ESIM_MONITOR_ACCOUNTS__ACME__TOKEN`, `accounts__acme__token`). Requests go only to the
account's `base_url`: a line names a path, never a host, so no line can send the account's
credentials elsewhere.

What to request and where the figures are may be set on the account (the default for its
lines) and overridden per line, so a balance line and a SIM line can read two endpoints of
one provider. A line's other keys (`iccid = ...`) are the fields its templates name:

    [accounts.acme]
    provider = "http_json"
    base_url = "https://api.acme.example/v1"
    auth = "bearer"
    token = "..."
    url = "/sims/{iccid}"
    data_remaining = "data.remaining_mb"
    data_unit = "MB"
    expires_at = "data.valid_until"

    [lines.travel]
    account = "acme"
    iccid = "8901..."
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import jmespath
import jmespath.exceptions
import jmespath.functions
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.adapters.fields import (
    to_bytes,
    to_currency,
    to_datetime,
    to_money,
    to_text,
    unit_factor,
)
from monitor.adapters.http import (
    Auth,
    BadAnswer,
    BasicAuth,
    BearerAuth,
    HeaderAuth,
    HttpAccountOptions,
    HttpAdapter,
    Session,
    excerpt,
    segment,
)
from monitor.errors import CheckFailed
from monitor.model import Reading, utcnow

FIGURES = (
    "balance",
    "currency",
    "data_remaining",
    "data_total",
    "data_used",
    "expires_at",
    "status",
)
"""Each figure is found by one JMESPath expression. A literal such as `"'USD'"` gives a
fixed value (for providers whose replies name no currency)."""

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RAW_CHARS = 2000


# ---- option types -----------------------------------------------------------------------


def _expression(text: str) -> str:
    try:
        jmespath.compile(text)
    except jmespath.exceptions.JMESPathError as exc:
        raise ValueError(f"not a JMESPath expression: {' '.join(str(exc).split())}") from None
    return text


def _unit(text: str) -> str:
    unit_factor(text)
    return text


def _date_format(text: str) -> str:
    if text not in ("iso", "epoch", "epoch_ms") and "%" not in text:
        raise ValueError('use "iso", "epoch", "epoch_ms" or a strptime format such as "%Y-%m-%d"')
    return text


def _path(text: str) -> str:
    template_fields(text)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text) or text.startswith("//"):
        raise ValueError(
            "give a path under the account's base_url (such as '/sims/{iccid}'), not a URL: "
            "credentials go only to base_url"
        )
    return text


def _template(text: str) -> str:
    template_fields(text)
    return text


Expression = Annotated[str, AfterValidator(_expression)]
DataUnit = Annotated[str, AfterValidator(_unit)]
DateFormat = Annotated[str, AfterValidator(_date_format)]
PathTemplate = Annotated[str, AfterValidator(_path)]
Template = Annotated[str, AfterValidator(_template)]


def template_fields(template: str) -> set[str]:
    """The `{name}` fields a template uses. Only plain names: no attribute access, index or
    format spec, so a template reaches nothing but the line's own values."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from None
    names = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not _FIELD_NAME.fullmatch(name) or spec or conversion:
            raise ValueError(
                f"bad template field {{{name}}} in {template!r}: use plain names such as {{iccid}}"
            )
        names.add(name)
    return names


class Request(BaseModel):
    """What to ask and where the figures are: set on an account, overridden by its lines."""

    model_config = ConfigDict(frozen=True)

    url: PathTemplate | None = Field(
        default=None, description="path under the account's base_url; {fields} from the line"
    )
    method: Literal["GET", "POST"] | None = Field(
        default=None, description="GET (default) or POST for APIs that read by POST"
    )
    query: dict[str, Template] | None = Field(
        default=None, description="query parameters; values may use {fields}"
    )
    body: dict[str, Any] | None = Field(
        default=None, description="JSON body of a POST; string values may use {fields}"
    )
    headers: dict[str, str] | None = Field(
        default=None, description="extra request headers (not secrets: use auth)"
    )
    balance: Expression | None = Field(default=None, description="JMESPath to the balance")
    currency: Expression | None = Field(
        default=None, description="JMESPath to the currency code, or a literal: \"'USD'\""
    )
    data_remaining: Expression | None = Field(default=None, description="JMESPath to the data left")
    data_total: Expression | None = Field(default=None, description="JMESPath to the plan's data")
    data_used: Expression | None = Field(
        default=None, description="JMESPath to the data used; remaining = total - used"
    )
    expires_at: Expression | None = Field(default=None, description="JMESPath to the expiry")
    status: Expression | None = Field(default=None, description="JMESPath to the status")
    data_unit: DataUnit | None = Field(
        default=None, description="unit of bare data numbers: B (default), KB, MB, GB, MiB, GiB"
    )
    date_format: DateFormat | None = Field(
        default=None, description='"iso" (default), "epoch", "epoch_ms" or a strptime format'
    )
    critical_statuses: list[str] | None = Field(
        default=None, description="statuses that make the line critical, such as EXPIRED"
    )


class HttpJsonAccount(HttpAccountOptions, Request):
    """An account: where the API is, how to authenticate, and its lines' default request.

    Auth keys are top-level and named like secrets (`token`, `password`, `api_key`), so
    `config show` masks them and each can come from the environment or a credential file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    credential_keys: ClassVar[str | None] = (
        '`auth = "basic"` with `username` and `password` (or `token`, `api_key`)'
    )

    auth: Literal["none", "bearer", "basic", "header"] = Field(
        default="none",
        description="none; bearer (token); basic (username, password); "
        "header (api_key_header, api_key)",
    )
    token: SecretStr | None = Field(default=None, description="auth = bearer: the token")
    username: str | None = Field(default=None, description="auth = basic: the user")
    password: SecretStr | None = Field(default=None, description="auth = basic: the password")
    api_key_header: str | None = Field(
        default=None, description="auth = header: the header's name, such as X-API-Key"
    )
    api_key: SecretStr | None = Field(default=None, description="auth = header: its value")

    _NEEDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "none": (),
        "bearer": ("token",),
        "basic": ("username", "password"),
        "header": ("api_key_header", "api_key"),
    }

    @model_validator(mode="after")
    def _auth_keys(self) -> HttpJsonAccount:
        for key in self._NEEDS[self.auth]:
            if getattr(self, key) is None:
                raise ValueError(f"auth = {self.auth!r} needs `{key}`")
        for scheme, keys in self._NEEDS.items():
            for key in keys:
                if scheme != self.auth and getattr(self, key) is not None:
                    raise ValueError(f"`{key}` is used only with auth = {scheme!r}")
        if self.api_key_header is not None and not re.fullmatch(
            r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", self.api_key_header
        ):
            raise ValueError(f"api_key_header {self.api_key_header!r} is not a header name")
        return self

    def make_auth(self) -> Auth | None:
        """The credentials as the HTTP layer applies them (unwrapped there, per request)."""
        if self.auth == "bearer" and self.token is not None:
            return BearerAuth(self.token)
        if self.auth == "basic" and self.username is not None and self.password is not None:
            return BasicAuth(self.username, self.password)
        if self.auth == "header" and self.api_key_header and self.api_key is not None:
            return HeaderAuth(self.api_key_header, self.api_key)
        return None


class HttpJsonOptions(Request):
    """A line: overrides of its account's request, and the fields its templates name
    (`iccid = "8901..."`: any other key, a string or a whole number)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @model_validator(mode="after")
    def _fields(self) -> HttpJsonOptions:
        for name, value in (self.model_extra or {}).items():
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"{name!r} cannot be a template field: use letters, digits and _")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError(
                    f"unknown key {name!r} (template fields are strings or whole numbers)"
                )
        return self

    def fields(self, line_id: str) -> dict[str, str]:
        """The values templates may name: the line's own keys, and `line`, its id."""
        return {"line": line_id, **{k: str(v) for k, v in (self.model_extra or {}).items()}}


# ---- what one read does -----------------------------------------------------------------


class Spec(BaseModel):
    """An account's request merged with a line's, defaults filled in."""

    model_config = ConfigDict(frozen=True)

    url: str
    method: Literal["GET", "POST"] = "GET"
    query: dict[str, str] = {}
    body: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    expressions: dict[str, str]
    data_unit: str = "B"
    date_format: str = "iso"
    critical_statuses: frozenset[str] = frozenset()

    @classmethod
    def merge(cls, account: Request | None, line: Request) -> Spec:
        """The line's keys win; headers are merged. ValueError when no URL or no figure."""
        merged: dict[str, Any] = {}
        for layer in (account, line):
            if layer is None:
                continue
            for key in Request.model_fields:
                value = getattr(layer, key)
                if value is None:
                    continue
                if key == "headers":
                    merged["headers"] = {**merged.get("headers", {}), **value}
                else:
                    merged[key] = value
        if "url" not in merged:
            raise ValueError("no `url` is set, on the line or its account")
        if "body" in merged and merged.get("method", "GET") != "POST":
            raise ValueError('a `body` is sent only with method = "POST"')
        expressions = {k: merged.pop(k) for k in FIGURES if k in merged}
        if not set(expressions) - {"currency"}:
            raise ValueError(
                "no figure to read: set at least one of "
                + ", ".join(k for k in FIGURES if k != "currency")
                + " (a JMESPath expression), on the line or its account"
            )
        statuses = merged.pop("critical_statuses", [])
        return cls(
            **merged,
            expressions=expressions,
            critical_statuses=frozenset(s.upper() for s in statuses),
        )

    def fields_used(self) -> set[str]:
        """Every field the url, query and body templates name."""
        names = template_fields(self.url)
        for value in self.query.values():
            names |= template_fields(value)
        return names | _body_fields(self.body)


def _body_fields(body: Any) -> set[str]:
    if isinstance(body, str):
        return template_fields(body)
    if isinstance(body, Mapping):
        return set().union(*(_body_fields(v) for v in body.values()))
    if isinstance(body, list):
        return set().union(*(_body_fields(v) for v in body))
    return set()


def render(template: str, values: Mapping[str, str], *, path: bool = False) -> str:
    """Fill a template's fields. In a path every value is one escaped segment, so an ICCID
    with a '/' or '?' cannot change which resource is asked."""
    missing = template_fields(template) - set(values)
    if missing:
        raise ValueError(f"{template!r} needs {', '.join(sorted(missing))}: set it on the line")
    if path:
        values = {k: segment(v) for k, v in values.items()}
    return template.format_map(values)


def render_body(body: Any, values: Mapping[str, str]) -> Any:
    if isinstance(body, str):
        return render(body, values)
    if isinstance(body, Mapping):
        return {k: render_body(v, values) for k, v in body.items()}
    if isinstance(body, list):
        return [render_body(v, values) for v in body]
    return body


class _ExactFunctions(jmespath.functions.Functions):
    """JMESPath's functions, with Decimal as a number: replies are parsed with Decimal (money
    never passes through float), and stock jmespath rejects Decimal in sum(), max(),
    sort_by()... and truncates it in to_number()."""

    def _get_allowed_pytypes(self, types: Any) -> Any:
        allowed, subtypes = super()._get_allowed_pytypes(types)
        if "float" in allowed:
            allowed = [*allowed, "Decimal"]
        return allowed, [(*sub, "Decimal") if "float" in sub else sub for sub in subtypes]

    @jmespath.functions.signature({"types": []})
    def _func_to_number(self, arg: Any) -> Any:
        if isinstance(arg, Decimal):
            return arg
        if isinstance(arg, str):
            try:
                number = Decimal(arg.strip())
            except InvalidOperation:
                return None
            return number if number.is_finite() else None
        return super()._func_to_number(arg)

    @jmespath.functions.signature({"types": []})
    def _func_type(self, arg: Any) -> Any:
        return "number" if isinstance(arg, Decimal) else super()._func_type(arg)


_OPTIONS = jmespath.Options(custom_functions=_ExactFunctions())


def read_figures(spec: Spec, payload: Any) -> dict[str, Any]:
    """Each configured figure's value in the reply (None where the expression finds nothing).
    An expression that fails on this reply's shape (a function given the wrong type) is a
    ValueError naming it."""
    found = {}
    for name, expression in spec.expressions.items():
        try:
            found[name] = jmespath.search(expression, payload, options=_OPTIONS)
        except (jmespath.exceptions.JMESPathError, TypeError, ArithmeticError) as exc:
            raise ValueError(f"{name} ({expression}): {' '.join(str(exc).split())}") from None
    return found


def to_reading(line_id: str, spec: Spec, payload: Any, now: datetime) -> Reading:
    """The reply as a Reading. ValueError names the figure that cannot be read, or says that
    none was found (an error body sent with 200, say): a missing figure is absent, never 0."""
    found = read_figures(spec, payload)
    if all(value is None for name, value in found.items() if name != "currency"):
        raise ValueError(
            "the reply has none of the configured figures ("
            + ", ".join(f"{k} = {v!r}" for k, v in spec.expressions.items() if k != "currency")
            + ")"
        )
    converters: dict[str, Callable[[Any], Any]] = {
        "balance": to_money,
        "currency": to_currency,
        "data_remaining": lambda v: to_bytes(v, spec.data_unit),
        "data_total": lambda v: to_bytes(v, spec.data_unit),
        "data_used": lambda v: to_bytes(v, spec.data_unit),
        "expires_at": lambda v: to_datetime(v, spec.date_format),
        "status": to_text,
    }
    figures: dict[str, Any] = {}
    for name, value in found.items():
        if value is None:
            continue
        try:
            figures[name] = converters[name](value)
        except ValueError as exc:
            raise ValueError(f"{name} ({spec.expressions[name]}): {exc}") from None
    remaining = figures.get("data_remaining")
    used, total = figures.get("data_used"), figures.get("data_total")
    if remaining is None and used is not None and total is not None:
        remaining = max(total - used, 0)
    status = figures.get("status")
    critical = status.lower() if status and status.upper() in spec.critical_statuses else None
    balance = figures.get("balance")
    return Reading(
        line=line_id,
        checked_at=now,
        balance=balance,
        currency=figures.get("currency") if balance is not None else None,
        data_remaining=remaining,
        data_total=total,
        expires_at=figures.get("expires_at"),
        status=status,
        critical_reason=critical,
        extras={"data_used": used} if used is not None else {},
        raw=payload,
    )


# ---- the adapter ------------------------------------------------------------------------


class HttpJsonAdapter(HttpAdapter):
    name = "http_json"
    description = (
        "Any JSON API: a path under the account's base_url, bearer/basic/header auth, "
        "JMESPath expressions for the figures."
    )
    Options = HttpJsonOptions
    AccountOptions = HttpJsonAccount

    def make_session(self) -> Session:
        """As the base does, but messages name the API's host: "api.acme.example sent HTML"."""
        options: HttpJsonAccount = self.account_ref.options
        secrets = [
            s.get_secret_value() for s in (options.token, options.password, options.api_key) if s
        ]
        return Session(
            provider=urlsplit(options.base_url).hostname or "the API",
            account=self.account_ref.name,
            base_url=options.base_url,
            timeout=options.timeout,
            auth=self.make_auth(),
            secrets=secrets,
            redactor=self.context.redactor,
            rate_limit=self.rate_limit,
            max_body=self.max_response_bytes,
        )

    def make_auth(self) -> Auth | None:
        options: HttpJsonAccount = self.account_ref.options
        return options.make_auth()

    def read(self) -> Reading:
        line: HttpJsonOptions = self.options
        account: HttpJsonAccount = self.account_ref.options
        try:
            spec = Spec.merge(account, line)
            values = line.fields(self.line_id)
            unused = set(values) - spec.fields_used() - {"line"}
            if unused:
                raise ValueError(
                    f"unknown key(s) {', '.join(sorted(unused))}: not an option, and not a "
                    f"field of url {spec.url!r}, query or body"
                )
            path = render(spec.url, values, path=True)
            query = {k: render(v, values) for k, v in spec.query.items()}
            body = render_body(spec.body, values)
        except ValueError as exc:
            raise CheckFailed(
                f"line {self.line_id} (account {self.account_ref.name}): {exc}"
            ) from None
        session = self.session
        budget = session.budget()
        not_found = (
            f"{session.provider} has nothing at {path} (HTTP 404) for account "
            f"{self.account_ref.name}: check the line's "
            + (", ".join(sorted(set(values) - {"line"})) or "url")
        )
        response = session.request(
            spec.method,
            path,
            params=query or None,
            headers=spec.headers or None,
            json=body,
            budget=budget,
        )
        session.check_status(response, {404: not_found})
        payload = session.parse_json(response)
        try:
            return to_reading(self.line_id, spec, payload, utcnow())
        except ValueError as exc:
            shown = session.redact(_json_text(payload))
            raise BadAnswer(
                session.redact(
                    f"{session.provider} answered account {self.account_ref.name} without a "
                    f"usable figure: {exc}; the answer: {excerpt(shown, 160)}"
                ),
                raw=shown[:RAW_CHARS],
                status=response.status_code,
            ) from None


def _json_text(payload: Any) -> str:
    return json.dumps(payload, default=str, ensure_ascii=False)
