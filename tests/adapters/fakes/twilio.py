"""The Twilio fakes on loopback (the main API and the Super SIM host), for the adapter read
through the real HTTP client.

The fakes serve the shapes of Twilio's OpenAPI (twilio/twilio-oai, spec/json/twilio_api_v2010.json
and twilio_supersim_v1.json: Balance.json, Sim, BillingPeriods paged with `meta`,
UsageRecords, Fleet), nothing the spec does not have. Errors `{"code", "message",
"more_info", "status"}` follow Twilio's error documentation (the OAI has no error schema).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fakes.base import FakeProvider, Request, Route, json_reply

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-42"
SIM_SID = "HS" + "a" * 32
FLEET_SID = "HF" + "b" * 32


def twilio_error(status: int, code: int, message: str) -> Any:
    more = f"https://www.twilio.com/docs/errors/{code}"
    return json_reply(
        status, {"code": code, "message": message, "more_info": more, "status": status}
    )


class FakeTwilioApi(FakeProvider):
    """providers.md, "Twilio": `GET /2010-04-01/Accounts/{Sid}/Balance.json`."""

    def routes(self) -> list[tuple[str, str, Route]]:
        return [("GET", r"/2010-04-01/Accounts/(?P<sid>\w+)/Balance\.json", self.balance)]

    def balance(self, request: Request, match: Any) -> Any:
        if request.basic != (SID, TOKEN) or match["sid"] != SID:
            return twilio_error(401, 20003, "Authenticate")
        return json_reply(200, {"account_sid": SID, "balance": "12.34", "currency": "USD"})


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeSuperSim(FakeProvider):
    """The Super SIM host: the SIM (for its fleet and status), its billing periods (oldest
    first, `page_size` a page, `meta.next_page_url` to the next), usage records
    (`data_total` bytes) and the Fleet (`data_limit` MB)."""

    def __init__(self) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.start = now - timedelta(days=10)
        self.end = now + timedelta(days=20)
        self.status = "active"
        self.page_size = 50
        self.data_used = 250_000_000  # bytes this billing period
        self.spans = [(self.start - timedelta(days=30), self.start), (self.start, self.end)]

    def routes(self) -> list[tuple[str, str, Route]]:
        return [
            ("GET", r"/v1/Sims/(?P<sim>[^/]+)", self.sim),
            ("GET", r"/v1/Sims/(?P<sim>[^/]+)/BillingPeriods", self.periods),
            ("GET", r"/v1/UsageRecords", self.usage),
            ("GET", r"/v1/Fleets/(?P<fleet>[^/]+)", self.fleet),
        ]

    def handle(self, request: Request) -> Any:
        if request.basic != (SID, TOKEN):
            return twilio_error(401, 20003, "Authenticate")
        return super().handle(request)

    def sim(self, request: Request, match: Any) -> Any:
        if match["sim"] not in (SIM_SID, "tracker-1"):
            return twilio_error(404, 20404, "The requested resource was not found")
        url = f"https://supersim.twilio.com/v1/Sims/{SIM_SID}"
        return json_reply(
            200,
            {
                "sid": SIM_SID,
                "account_sid": SID,
                "unique_name": "tracker-1",
                "status": self.status,
                "fleet_sid": FLEET_SID,
                "iccid": "89883070000123456789",
                "date_created": "2015-07-30T20:00:00Z",
                "date_updated": "2015-07-30T20:00:00Z",
                "url": url,
                "links": {
                    "billing_periods": f"{url}/BillingPeriods",
                    "sim_ip_addresses": f"{url}/IpAddresses",
                },
            },
        )

    def periods(self, request: Request, match: Any) -> Any:
        page = int(request.arg("Page") or 0)
        size = self.page_size
        base = f"https://supersim.twilio.com/v1/Sims/{SIM_SID}/BillingPeriods"
        chunk = self.spans[page * size : (page + 1) * size]
        more = (page + 1) * size < len(self.spans)
        link = f"{base}?PageSize={size}&Page={{}}&PageToken=PAHB{page}"
        return json_reply(
            200,
            {
                "billing_periods": [
                    {
                        "sid": f"HB{page:02d}{n:030d}",
                        "account_sid": SID,
                        "sim_sid": SIM_SID,
                        "period_type": "active",
                        "start_time": stamp(start),
                        "end_time": stamp(end),
                        "date_created": stamp(start),
                        "date_updated": stamp(start),
                    }
                    for n, (start, end) in enumerate(chunk)
                ],
                "meta": {
                    "page": page,
                    "page_size": size,
                    "first_page_url": f"{base}?PageSize={size}&Page=0",
                    "previous_page_url": link.format(page - 1) if page else None,
                    "url": link.format(page),
                    "next_page_url": link.format(page + 1) if more else None,
                    "key": "billing_periods",
                },
            },
        )

    def usage(self, request: Request, _: Any) -> Any:
        assert request.arg("Sim") == SIM_SID
        assert request.arg("StartTime") == stamp(self.start)
        return json_reply(
            200,
            {
                "usage_records": [
                    {
                        "period": {
                            "start_time": request.arg("StartTime"),
                            "end_time": request.arg("EndTime"),
                        },
                        "account_sid": SID,
                        "data_upload": 50_000_000,
                        "data_download": 200_000_000,
                        "data_total": self.data_used,
                        "data_total_billed": "0.03",
                        "billed_unit": "USD",
                        "sim_sid": SIM_SID,
                        "fleet_sid": None,
                        "network_sid": None,
                        "iso_country": None,
                    }
                ],
                "meta": {
                    "first_page_url": "https://supersim.twilio.com/v1/UsageRecords?PageSize=50&Page=0",
                    "key": "usage_records",
                    "next_page_url": None,
                    "page": 0,
                    "page_size": 50,
                    "previous_page_url": None,
                    "url": "https://supersim.twilio.com/v1/UsageRecords?PageSize=50&Page=0",
                },
            },
        )

    def fleet(self, request: Request, match: Any) -> Any:
        return json_reply(
            200,
            {
                "account_sid": SID,
                "unique_name": "unique_name",
                "data_enabled": True,
                "data_limit": 1000,
                "data_metering": "payg",
                "date_created": "2019-07-30T20:00:00Z",
                "date_updated": "2019-07-30T20:00:00Z",
                "sms_commands_enabled": True,
                "sms_commands_method": "POST",
                "sms_commands_url": None,
                "ip_commands_method": "POST",
                "ip_commands_url": None,
                "network_access_profile_sid": "HA" + "a" * 32,
                "sid": match["fleet"],
                "url": f"https://supersim.twilio.com/v1/Fleets/{match['fleet']}",
            },
        )


def config_text(api: str, supersim: str, token: str = TOKEN, sim: str = SIM_SID) -> str:
    return f"""
[accounts.twilio]
provider = "twilio"
account_sid = "{SID}"
auth_token = "{token}"
base_url = "{api}"
supersim_base_url = "{supersim}"

[lines.balance]
account = "twilio"

[lines.tracker]
account = "twilio"
sim = "{sim}"
"""
