"""The Airalo fake: the Partner API on loopback, for the adapter read through the real client.

The fake follows providers.md, section "Airalo Partner API" (token, usage, partner credit,
404 and 429 bodies, business errors); details the reference leaves open are marked.
"""

from __future__ import annotations

import itertools
import threading
import urllib.request
from datetime import UTC, datetime
from typing import Any

from fakes.base import (
    FakeProvider,
    Reply,
    Request,
    Route,
    iso,
    json_reply,
)

CLIENT_ID = "partner-client"
CLIENT_SECRET = "s3cr3t-airalo-client-secret"
ICCID = "8944465400000267221"


def usage(**overrides: Any) -> dict[str, Any]:
    """providers.md, Airalo "Usage": the documented sample (remaining/total in MB)."""
    data = {
        "remaining": 767,
        "total": 2048,
        "expired_at": "2022-01-01 00:00:00",
        "is_unlimited": False,
        "status": "ACTIVE",
        "remaining_voice": 0,
        "remaining_text": 0,
        "total_voice": 0,
        "total_text": 0,
    }
    data.update(overrides)
    return {"data": data, "meta": {"message": "api.succes"}}


class FakeAiralo(FakeProvider):
    """providers.md, "Airalo Partner API": POST /v2/token (multipart, client credentials),
    GET /v2/sims/{iccid}/usage and GET /v2/balance with Bearer. The body of a refused
    login is not documented: a 401 with a `message` here (unsure)."""

    def __init__(self) -> None:
        self.sims: dict[str, dict[str, Any]] = {ICCID: usage()}
        self.valid: set[str] = set()
        self.numbers = itertools.count(1)
        self.lock = threading.Lock()
        self.accept_tokens = True
        self.opt_ins: list[dict[str, Any]] = []
        """Each opt-in request's JSON body, as received (also those refused)."""

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("POST", r"/v2/notifications/opt-in", self.opt_in),
            ("POST", r"/v2/token", self.token),
            ("GET", r"/v2/sims/(?P<iccid>[^/]+)/usage", self.usage),
            ("GET", r"/v2/balance", self.balance),
        ]

    def revoke(self) -> None:
        """Server-side token expiry: every token issued so far stops working."""
        with self.lock:
            self.valid.clear()

    def token(self, request: Request, _: Any) -> Reply:
        form = request.form()
        if form != {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "grant_type": "client_credentials",
        }:
            return json_reply(401, {"message": "Unauthorized: invalid client credentials"})
        token = f"airalo-token-{next(self.numbers)}"
        with self.lock:
            if self.accept_tokens:
                self.valid.add(token)
        return json_reply(
            200,
            {
                "data": {"token_type": "Bearer", "expires_in": 31622400, "access_token": token},
                "meta": {"message": "success"},
            },
        )

    def authorized(self, request: Request) -> bool:
        with self.lock:
            return request.bearer in self.valid

    def usage(self, request: Request, match: Any) -> Reply:
        if not self.authorized(request):
            return json_reply(401, {"message": "Unauthenticated."})
        if request.headers.get("Accept") != "application/json":
            return Reply(406, "<html>Not Acceptable</html>", content_type="text/html")
        sim = self.sims.get(match["iccid"])
        if sim is None:
            return json_reply(404, {"data": [], "meta": {"message": "messages.resource_not_found"}})
        return json_reply(200, sim)

    def opt_in(self, request: Request, _: Any) -> Reply:
        """POST /v2/notifications/opt-in (JSON `type`, `webhook_url`, `levels` for the credit
        limit), answered as the documentation's examples (`notification` with the
        `contact_point`), after checking the URL with a HEAD request as Airalo does ("Your
        endpoint must respond with 200 OK for the opt-in to be considered successful",
        Webhook definition). How Airalo refuses a URL that fails it is not documented: a
        422 in the shape of its validation errors here (unsure)."""
        if not self.authorized(request):
            return json_reply(401, {"message": "Unauthenticated."})
        body = request.json()
        with self.lock:
            self.opt_ins.append(body)
        kind, url = body.get("type"), body.get("webhook_url")
        if kind not in ("webhook_low_data", "webhook_credit_limit", "async_orders"):
            return json_reply(
                422, {"data": {"type": "The selected type is invalid."}, "meta": {"message": "x"}}
            )
        if not head_ok(str(url)):
            return json_reply(
                422,
                {
                    "data": {"webhook_url": "The webhook url did not answer 200 OK to HEAD."},
                    "meta": {"message": "the parameter is invalid"},
                },
            )
        notification: dict[str, Any] = {"type": kind, "contact_point": url}
        if kind == "webhook_credit_limit" and "levels" in body:
            notification["levels"] = body["levels"]
        return json_reply(
            200, {"data": {"notification": notification}, "meta": {"message": "success"}}
        )

    def balance(self, request: Request, _: Any) -> Reply:
        if not self.authorized(request):
            return json_reply(401, {"message": "Unauthenticated."})
        return Reply(
            200,
            '{"data": {"balances": {"name": "balance", "availableBalance": '
            '{"amount": 1234.56, "currency": "USD"}}}, "meta": {"message": "success"}}',
            content_type="application/json",
        )


def head_ok(url: str) -> bool:
    """Whether `url` answers 200 to a HEAD request (what Airalo asks of a webhook URL)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10) as r:
            return bool(r.status == 200)
    except (OSError, ValueError):
        return False


def config_text(
    url: str, *, timeout: str = "20s", secret: str = CLIENT_SECRET, lines: str = ""
) -> str:
    return f"""
[accounts.travel]
provider = "airalo"
client_id = "{CLIENT_ID}"
client_secret = "{secret}"
base_url = "{url}"
timeout = "{timeout}"

[lines.trip]
account = "travel"
iccid = "{ICCID}"

[lines.credit]
account = "travel"
"""


# ---- top-ups ---------------------------------------------------------------------------

PACKAGE = "bonbon-mobile-30days-3gb-topup"
ORDER = r"/v2/orders/topups"


def history_entry(number: int, package: str, **times: str | None) -> dict[str, Any]:
    """providers.md, Airalo: one entry of `GET /v2/sims/{iccid}/packages`, in the shape of
    Airalo's documented sample (which has `activated_at` and no `created_at`)."""
    entry: dict[str, Any] = {
        "id": number,
        "status": "ACTIVE",
        "remaining": 3072,
        "activated_at": None,
        "expired_at": None,
        "finished_at": None,
        "package": {"id": package, "type": "topup", "price": 10, "net_price": 8, "amount": 3072},
    }
    entry.update(times)
    return entry


def catalogue_entry(package: str, **prices: float) -> dict[str, Any]:
    """One top-up of `GET /v2/sims/{iccid}/topups`, in the shape of Airalo's documented
    example (developers.partners.airalo.com/get-top-up-package-list-11883031e0). The example
    has `price` only; `net_price` is what the partner pays where the pricing model gives it
    (airalo-python-sdk README, the `topup` packages of "Packages": price 5, net_price 4)."""
    return {
        "id": package,
        "type": "topup",
        "amount": 3072,
        "day": 30,
        "is_unlimited": False,
        "title": "3 GB - 30 Days",
        "data": "3 GB",
        "short_info": None,
        **prices,
    }


class TopUpAiralo(FakeAiralo):
    """Adds the top-up order (multipart `package_id`, `iccid`, `description` -> 200 with the
    order in the fields of the documented answer, developers.partners.airalo.com/submit-top-
    up-order-11883026e0: `price` only), the eSIM's top-up catalogue, and the package
    history, where each order appears at once with `activated_at` = when it was bought
    (unsure: the reference says only "ISO times")."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: list[dict[str, str]] = []
        self.history: list[dict[str, Any]] = []
        self.order_numbers = itertools.count(111)
        self.catalogue = [catalogue_entry(PACKAGE, price=10, net_price=8)]

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("POST", ORDER, self.order),
            ("GET", r"/v2/sims/(?P<iccid>[^/]+)/packages", self.packages),
            ("GET", r"/v2/sims/(?P<iccid>[^/]+)/topups", self.topups),
            *super().routes(),
        ]

    def topups(self, request: Request, match: Any) -> Reply:
        if not self.authorized(request):
            return json_reply(401, {"message": "Unauthenticated."})
        if match["iccid"] not in self.sims:
            return json_reply(404, {"data": [], "meta": {"message": "messages.resource_not_found"}})
        return json_reply(200, {"data": self.catalogue})

    def order(self, request: Request, _: Any) -> Reply:
        if not self.authorized(request):
            return json_reply(401, {"message": "Unauthenticated."})
        form = request.form()
        if form.get("iccid") not in self.sims:
            return json_reply(422, {"data": {"iccid": "invalid iccid"}, "meta": {"message": "x"}})
        now = datetime.now(UTC)
        with self.lock:
            number = next(self.order_numbers)
            self.orders.append(form)
            self.history.append(history_entry(number, form["package_id"], activated_at=iso(now)))
        return json_reply(
            200,
            {
                "data": {
                    "package_id": form["package_id"],
                    "quantity": "1",
                    "type": "topup",
                    "description": form.get("description"),
                    "esim_type": "Prepaid",
                    "validity": 30,
                    "package": "Bonbon Mobile 2-3 GB - 30 Days",
                    "data": "3 GB",
                    "price": 10,
                    "created_at": now.strftime("%Y-%m-%d %H:%M:%S"),
                    "id": number,
                    "code": f"20251118-{number:06d}",
                    "currency": "USD",
                    "manual_installation": "",
                    "qrcode_installation": "",
                    "installation_guides": {"en": "http://airalo.local:8080/installation-guide"},
                },
                "meta": {"message": "success"},
            },
        )

    def packages(self, request: Request, match: Any) -> Reply:
        if not self.authorized(request):
            return json_reply(401, {"message": "Unauthenticated."})
        if match["iccid"] not in self.sims:
            return json_reply(404, {"data": [], "meta": {"message": "messages.resource_not_found"}})
        with self.lock:
            entries = list(self.history)
        return json_reply(200, {"pricing": {"model": "net_pricing"}, "data": entries})
