"""1NCE Data Streamer records as 1NCE documents them (placeholders included), for the pure
webhook tests and the end-to-end ones.

Sources (help.1nce.com, Data Streamer):
- "Usage Records" (docs/platform-services/platform-services-data-streamer/
  data-streamer-usage-records): 05_Data_Usage_Record, 06_SMS_Usage_Record;
- "Event Records" (docs/platform-services/platform-services-data-streamer/
  data-streamer-event-records): 09_SIM_Suspension, 18_Data_Quota_Threshold_Reached,
  01_Update_Location;
- "HTTP/Webhook" (docs/blueprints-examples/examples-data-streamer/
  examples-data-streamer-http), "Usage Record cURL": the body of its sample POST, a list
  holding the data usage record.

The pages repeat one shape per kind of record, so each record here is that shape
(`_usage_record`, `_event_record`) filled with the values its page shows: every field and
value is the documented one; key order and indentation are not the pages'.
"""

from __future__ import annotations

import json
from typing import Any

_IMPORTED = "2019-01-21T09:36:17Z"
_NO_TAGS = {"tags": None, "ip_address": "<ip_address>", "name": "<name>", "imei": "<imei>"}


def _usage_record(
    *,
    organisation: int,
    started: str,
    iccid: str,
    operator: int,
    tariff: tuple[str, str],
    traffic: tuple[str, int],
    endpoint: int,
    volume: tuple[float, float, float],
) -> str:
    """A usage record: its documented values in the shape both usage records share."""
    ratezone, name = tariff
    total, tx, rx = volume
    record: dict[str, Any] = {
        "imsi": "<imsi>",
        "organisation": {"name": "8100xxxx", "id": organisation},
        "start_timestamp": started,
        "sim": {
            "msisdn": "<msisdn>",
            "iccid": iccid,
            "id": 123456,
            "production_date": "2018-04-17T15:01:50Z",
        },
        "currency": {"id": 1, "symbol": "€", "code": "EUR"},
        "operator": {
            "id": operator,
            "name": "T-Mobile",
            "mnc": "01",
            "country": {"id": 74, "mcc": "262", "name": "Germany"},
        },
        "tariff": {"ratezone": {"name": ratezone, "id": 2067}, "name": name, "id": 398},
        "imsi_id": 1234567,
        "traffic_type": {"description": traffic[0], "id": traffic[1]},
        "id": 1234567890,
        "end_timestamp": "2021-08-09T12:51:20Z",
        "endpoint": {**_NO_TAGS, "id": endpoint, "balance": None},
        "cost": total,
        "volume": {"total": total, "tx": tx, "rx": rx},
    }
    return json.dumps(record, indent=4, ensure_ascii=False)


def _event_record(
    *,
    imsi: int,
    source: tuple[str, int],
    organisation: int,
    severity: tuple[int, str],
    sim: int,
    description: str,
    alert: bool,
    endpoint: int,
    event: tuple[int, str],
    detail: dict[str, Any] | None = None,
) -> str:
    """An event record: its documented values in the shape every event record shares."""
    record: dict[str, Any] = {
        "imsi": {"imsi": "<imsi>", "id": imsi, "import_date": _IMPORTED},
        "event_source": {"description": source[0], "id": source[1]},
        "organisation": {"name": "8100xxxx", "id": organisation},
        "event_severity": {"id": severity[0], "description": severity[1]},
        "sim": {
            "msisdn": "<msisdn>",
            "iccid": "<iccid>",
            "id": sim,
            "production_date": _IMPORTED,
        },
        "description": description,
        "alert": alert,
        "id": 1234567890,
        "user": None,
        **({} if detail is None else {"detail": detail}),
        "endpoint": {**_NO_TAGS, "id": endpoint},
        "event_type": {"id": event[0], "description": event[1]},
        "timestamp": _IMPORTED,
    }
    return json.dumps(record, indent="\t", ensure_ascii=False)


DATA_USAGE_RECORD = _usage_record(
    organisation=1234,
    started="2021-08-09T12:59:05Z",
    iccid="<icc>",
    operator=2,
    tariff=("Rate Zone 2 (EU - DE)", "1NCE Production 01"),
    traffic=("Data", 5),
    endpoint=12345678,
    volume=(0.001176, 0.001176, 0.0),
)

SMS_USAGE_RECORD = _usage_record(
    organisation=12345,
    started="2021-08-09T12:51:20Z",
    iccid="<iccid>",
    operator=5,
    tariff=("Zone 1", "Tariff 1"),
    traffic=("SMS", 6),
    endpoint=1234567,
    volume=(1.0, 0.0, 1.0),
)

USAGE_RECORD_POST = f"[{DATA_USAGE_RECORD}]"

SIM_SUSPENSION = _event_record(
    imsi=1234567,
    source=("API", 2),
    organisation=1234,
    severity=(0, "INFO"),
    sim=12345678,
    description="Status of SIM changed from 'Activated' to 'Suspended'",
    alert=False,
    endpoint=123456,
    event=(9, "SIM suspension"),
)

DATA_QUOTA_THRESHOLD_REACHED = _event_record(
    imsi=12345678,
    source=("Policy Control", 1),
    organisation=12345,
    severity=(1, "WARN"),
    sim=12345678,
    description="Endpoint quota threshold reached, volume is below 20%.",
    alert=True,
    endpoint=12345678,
    event=(18, "Quota threshold reached"),
    detail={
        "quota": {
            "threshold_volume": 118.983794,
            "volume": 118.968383,
            "threshold_percentage": 20,
        }
    },
)

UPDATE_LOCATION = _event_record(
    imsi=123456,
    source=("Network", 0),
    organisation=1234,
    severity=(0, "INFO"),
    sim=1234567,
    description=("New location received from VLR for IMSI='<imsi>', now attached to VLR='<VLR>'."),
    alert=False,
    endpoint=1234567,
    event=(1, "Update location"),
    detail={
        "mnc": [{"mnc": "20", "id": 327}, {"mnc": "16", "id": 328}],
        "tapcode": [{"tapcode": "NLDDT", "id": 470}, {"tapcode": "NLDPN", "id": 471}],
        "name": "T-Mobile",
        "country": {
            "iso_code": "nl",
            "country_code": "31",
            "name": "Netherlands",
            "id": 141,
            "mcc": "204",
        },
        "id": 730,
    },
)


def with_iccid(payload: str, iccid: str) -> str:
    """A documented payload with a configured SIM's ICCID for its placeholder."""
    return payload.replace('"<icc>"', f'"{iccid}"').replace('"<iccid>"', f'"{iccid}"')
