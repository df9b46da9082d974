"""The 1NCE fake: the Management API on loopback, for the adapter read through the real client.

The fake serves what 1NCE's OpenAPI documents (help.1nce.com/api/ downloads: Authorization
`POST /oauth/token`, SIM Management v1 `components.schemas.Quota`): a Basic-auth token
request lasting an hour, quotas in binary MB floats (negative = overuse, v2
`SimsQuota.volume`), 400 BadCredentials, and 401/404/422 with the empty bodies the spec gives.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from fakes.base import FakeProvider, Reply, Request, Route, iso, json_reply

USER = "api-user"
PASSWORD = "pa55-1nce-secret"
ICCID = "8988280666000000001"


class FakeOnce(FakeProvider):
    """1NCE's OpenAPI: `POST /oauth/token` (HTTP Basic, JSON grant) -> `expires_in: 3600`;
    `GET /v1/sims/{iccid}/quota/data|sms` (the Quota schema's fields); 400 BadCredentials."""

    def __init__(self) -> None:
        self.expires_in = 3600
        self.valid: set[str] = set()
        self.numbers = itertools.count(1)
        self.expired: set[str] = set()
        self.sims: set[str] = {ICCID}
        """The ICCIDs the account holds (their quotas are all the same)."""
        self.quotas: dict[str, dict[str, Any]] = {
            "data": {
                "volume": 435.787951,
                "total_volume": 500,
                "expiry_date": "2029-01-01T00:00:00.000Z",
                "last_volume_added": 500,
                "threshold_percentage": 20,
            },
            "sms": {
                "volume": 42,
                "total_volume": 50,
                "expiry_date": "2029-01-01T00:00:00.000Z",
                "last_volume_added": 50,
                "threshold_percentage": 20,
            },
        }

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("POST", r"/management-api/oauth/token", self.token),
            (
                "GET",
                r"/management-api/v1/sims/(?P<iccid>[^/]+)/quota/(?P<kind>data|sms)",
                self.quota,
            ),
        ]

    def token(self, request: Request, _: Any) -> Reply:
        if request.basic != (USER, PASSWORD) or request.json() != {
            "grant_type": "client_credentials"
        }:
            return json_reply(
                400,
                {
                    "statusCode": 400,
                    "errorCode": "BadCredentials",
                    "message": "User does not exist.",
                },
            )
        token = f"1nce-token-{next(self.numbers)}"
        self.valid.add(token)
        return json_reply(
            200,
            {
                "status_code": 200,
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
            },
        )

    def quota(self, request: Request, match: Any) -> Reply:
        if request.bearer not in self.valid:
            return Reply(401)
        if match["iccid"] in self.expired:
            return Reply(422)
        if match["iccid"] not in self.sims:
            return Reply(404)
        return json_reply(200, self.quotas[match["kind"]])


def config_text(url: str, password: str = PASSWORD) -> str:
    return f"""
[accounts.iot]
provider = "1nce"
username = "{USER}"
password = "{password}"
base_url = "{url}/management-api"

[lines.sensor]
account = "iot"
iccid = "{ICCID}"

[lines.sensor-sms]
account = "iot"
iccid = "{ICCID}"
quotas = ["sms"]
"""


# ---- top-ups ---------------------------------------------------------------------------

ONCE_ORDER = r"/management-api/v1/sims/[^/]+/topup"


class TopUpOnce(FakeOnce):
    """Adds 1NCE's top-up (SIM Management OpenAPI `POST /v1/sims/{iccid}/topup`: 201, no
    body, `Location: .../v1/orders/N`; 400 "Payment method used is not valid.", 403, 404,
    422 with empty bodies) and the Order Management API (`GET /v1/orders` in pages of at most
    10 with `X-Total-Pages`, oldest first by order number; `GET /v1/orders/{order_number}`),
    orders in the `Order` schema's fields only."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: list[str] = []
        self.placed: list[dict[str, Any]] = []
        self.order_numbers = itertools.count(1234)
        self.page_count = True  # the spec says the page count is "listed in the response header"

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("POST", r"/management-api/v1/sims/(?P<iccid>[^/]+)/topup", self.topup),
            ("GET", r"/management-api/v1/orders", self.list_orders),
            ("GET", r"/management-api/v1/orders/(?P<number>[^/]+)", self.order),
            *super().routes(),
        ]

    def add_order(self, iccid: str, order_type: str = "TOPUP", **fields: Any) -> dict[str, Any]:
        number = next(self.order_numbers)
        order = {
            "order_number": number,
            "order_type": order_type,
            "order_date": iso(datetime.now(UTC)),
            "order_status": "COMPLETED",
            "invoice_number": str(20000000 + number),
            "invoice_amount": "19.99",
            "currency": "EUR",
            "sims": [
                {
                    "iccid": iccid,
                    "_links": [
                        {"rel": "self", "href": f"https://api.1nce.com/api/v1/sims/{iccid}"}
                    ],
                }
            ],
            "products": [{"product_id": 1001, "quantity": 1}],
        }
        order.update(fields)
        self.placed.append(order)
        return order

    def topup(self, request: Request, match: Any) -> Reply:
        if request.bearer not in self.valid:
            return Reply(401)
        method = request.arg("payment_method")
        if method not in ("banktransfer", "creditcard", "monthlyinvoice", "boleto"):
            return json_reply(400, {"message": "Payment method used is not valid."})
        if match["iccid"] in self.expired:
            return Reply(422)
        if match["iccid"] != ICCID:
            return Reply(404)
        self.orders.append(method)
        number = self.add_order(match["iccid"])["order_number"]
        location = f"https://api.1nce.com/management-api/v1/orders/{number}"
        return Reply(201, None, headers={"Location": location})

    def list_orders(self, request: Request, _: Any) -> Reply:
        if request.bearer not in self.valid:
            return Reply(401)
        size = int(request.arg("pageSize") or 10)
        page = int(request.arg("page") or 1)
        assert size <= 10, "1NCE's pageSize maximum is 10"
        pages = max(1, -(-len(self.placed) // size))
        chunk = self.placed[(page - 1) * size : page * size]
        headers = {"X-Total-Pages": str(pages)} if self.page_count else {}
        return json_reply(200, chunk, **headers)

    def order(self, request: Request, match: Any) -> Reply:
        if request.bearer not in self.valid:
            return Reply(401)
        for order in self.placed:
            if str(order["order_number"]) == match["number"]:
                return json_reply(200, order)
        return Reply(404)
