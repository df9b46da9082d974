"""The Telnyx fake on loopback, for the adapter read through the real HTTP client.

The fake serves the shapes of Telnyx's OpenAPI spec (team-telnyx/openapi, openapi/spec3.json:
`UserBalance`, `SIMCard`, `SIMCardStatus`, `SIMCardGroup`, `Errors`), with the schema's own
example values; nothing the spec does not have.
"""

from __future__ import annotations

from typing import Any

from fakes.base import FakeProvider, Request, Route, json_reply

API_KEY = "KEY0123telnyx"
SIM_ID = "6a09cdc3-8948-47f0-aa62-74ac943d6c58"
GROUP_ID = "b34c1683-cd85-4493-b9a5-315eb4bc5e19"


class FakeTelnyx(FakeProvider):
    """`GET /v2/balance`, `GET /v2/sim_cards/{id}` and `GET /v2/sim_card_groups/{id}`,
    Bearer. Error bodies `{"errors": [{code, title, detail}]}` (spec: `Errors`)."""

    def __init__(self) -> None:
        self.sim: dict[str, Any] = {
            "id": SIM_ID,
            "record_type": "sim_card",
            "iccid": "89310410106543789301",
            "status": {"value": "enabled"},
            "data_limit": {"amount": "2048.1", "unit": "MB"},
            "current_billing_period_consumed_data": {"amount": "1024.05", "unit": "MB"},
        }
        self.group: dict[str, Any] = {
            "id": GROUP_ID,
            "record_type": "sim_card_group",
            "default": False,
            "name": "My Test Group",
            "data_limit": None,
            "consumed_data": {"amount": "0", "unit": "MB"},
        }

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/v2/balance", self.balance),
            ("GET", r"/v2/sim_cards/(?P<id>[^/]+)", self.sim_card),
            ("GET", r"/v2/sim_card_groups/(?P<id>[^/]+)", self.sim_card_group),
        ]

    def handle(self, request: Request) -> Any:
        if request.bearer != API_KEY:
            error = {"code": "10009", "title": "Authentication failed", "detail": "bad key"}
            return json_reply(401, {"errors": [error]})
        return super().handle(request)

    def balance(self, request: Request, _: Any) -> Any:
        return json_reply(
            200,
            {
                "data": {
                    "record_type": "balance",
                    "balance": "300.00",
                    "credit_limit": "100.00",
                    "available_credit": "400.00",
                    "currency": "USD",
                }
            },
        )

    def sim_card(self, request: Request, match: Any) -> Any:
        if match["id"] != SIM_ID:
            error = {"code": "10005", "title": "Resource not found", "detail": "no such SIM"}
            return json_reply(404, {"errors": [error]})
        return json_reply(200, {"data": self.sim})

    def sim_card_group(self, request: Request, match: Any) -> Any:
        if match["id"] != GROUP_ID:
            error = {"code": "10005", "title": "Resource not found", "detail": "no such group"}
            return json_reply(404, {"errors": [error]})
        return json_reply(200, {"data": self.group})


def config_text(url: str, key: str = API_KEY, sim: str = SIM_ID) -> str:
    return f"""
[accounts.telnyx]
provider = "telnyx"
api_key = "{key}"
base_url = "{url}"

[lines.balance]
account = "telnyx"

[lines.modem]
account = "telnyx"
sim_card_id = "{sim}"
"""
