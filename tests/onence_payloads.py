"""1NCE Data Streamer records as 1NCE documents them, verbatim (placeholders included), for
the pure webhook tests and the end-to-end ones.

Sources (help.1nce.com, Data Streamer):
- "Usage Records" (docs/platform-services/platform-services-data-streamer/
  data-streamer-usage-records): 05_Data_Usage_Record, 06_SMS_Usage_Record;
- "Event Records" (docs/platform-services/platform-services-data-streamer/
  data-streamer-event-records): 09_SIM_Suspension, 18_Data_Quota_Threshold_Reached,
  01_Update_Location (tab-indented there, so here);
- "HTTP/Webhook" (docs/blueprints-examples/examples-data-streamer/
  examples-data-streamer-http), "Usage Record cURL": the body of its sample POST, a list.
"""

from __future__ import annotations

DATA_USAGE_RECORD = """{
    "imsi": "<imsi>",
    "organisation": {
        "name": "8100xxxx",
        "id": 1234
    },
    "start_timestamp": "2021-08-09T12:59:05Z",
    "sim": {
        "msisdn": "<msisdn>",
        "iccid": "<icc>",
        "id": 123456,
        "production_date": "2018-04-17T15:01:50Z"
    },
    "currency": {
        "id": 1,
        "symbol": "€",
        "code": "EUR"
    },
    "operator": {
      "id": 2,
      "name": "T-Mobile",
      "mnc": "01",
      "country": {
        "id": 74,
        "mcc": "262",
        "name": "Germany"
      }
    },
    "tariff": {
        "ratezone": {
            "name": "Rate Zone 2 (EU - DE)",
            "id": 2067
        },
        "name": "1NCE Production 01",
        "id": 398
    },
    "imsi_id": 1234567,
    "traffic_type": {
        "description": "Data",
        "id": 5
    },
    "id": 1234567890,
    "end_timestamp": "2021-08-09T12:51:20Z",
    "endpoint": {
        "tags": null,
        "ip_address": "<ip_address>",
        "name": "<name>",
        "imei": "<imei>",
        "id": 12345678,
        "balance": null
    },
    "cost": 0.001176,
    "volume": {
        "total": 0.001176,
        "tx": 0.001176,
        "rx": 0.0
    }
}"""

SMS_USAGE_RECORD = """{
    "imsi": "<imsi>",
    "organisation": {
        "name": "8100xxxx",
        "id": 12345
    },
    "start_timestamp": "2021-08-09T12:51:20Z",
    "sim": {
        "msisdn": "<msisdn>",
        "iccid": "<iccid>",
        "id": 123456,
        "production_date": "2018-04-17T15:01:50Z"
    },
    "currency": {
        "id": 1,
        "symbol": "€",
        "code": "EUR"
    },
    "operator": {
        "mnc": "01",
        "name": "T-Mobile",
        "country": {
            "name": "Germany",
            "id": 74,
            "mcc": "262"
        },
        "id": 5
    },
    "tariff": {
        "ratezone": {
            "name": "Zone 1",
            "id": 2067
        },
        "name": "Tariff 1",
        "id": 398
    },
    "imsi_id": 1234567,
    "traffic_type": {
        "description": "SMS",
        "id": 6
    },
    "id": 1234567890,
    "end_timestamp": "2021-08-09T12:51:20Z",
    "endpoint": {
        "tags": null,
        "ip_address": "<ip_address>",
        "name": "<name>",
        "imei": "<imei>",
        "balance": null,
        "id": 1234567
    },
    "cost": 1.0,
    "volume": {
        "total": 1.0,
        "tx": 0.0,
        "rx": 1.0
    }
}"""

USAGE_RECORD_POST = """[{
    "imsi": "<imsi>",
    "organisation": {
        "name": "8100xxxx",
        "id": 1234
    },
    "start_timestamp": "2021-08-09T12:59:05Z",
    "sim": {
        "msisdn": "<msisdn>",
        "iccid": "<icc>",
        "id": 123456,
        "production_date": "2018-04-17T15:01:50Z"
    },
    "currency": {
        "id": 1,
        "symbol": "€",
        "code": "EUR"
    },
    "operator": {
      "id": 2,
      "name": "T-Mobile",
      "mnc": "01",
      "country": {
        "id": 74,
        "mcc": "262",
        "name": "Germany"
      }
    },
    "tariff": {
        "ratezone": {
            "name": "Rate Zone 2 (EU - DE)",
            "id": 2067
        },
        "name": "1NCE Production 01",
        "id": 398
    },
    "imsi_id": 1234567,
    "traffic_type": {
        "description": "Data",
        "id": 5
    },
    "id": 1234567890,
    "end_timestamp": "2021-08-09T12:51:20Z",
    "endpoint": {
        "tags": null,
        "ip_address": "<ip_address>",
        "name": "<name>",
        "imei": "<imei>",
        "id": 12345678,
                "balance": null
    },
    "cost": 0.001176,
    "volume": {
        "total": 0.001176,
        "tx": 0.001176,
        "rx": 0.0
    }
}]"""

SIM_SUSPENSION = """{
	"imsi": {
		"imsi": "<imsi>",
		"id": 1234567,
		"import_date": "2019-01-21T09:36:17Z"
	},
	"event_source": {
		"description": "API",
		"id": 2
	},
	"organisation": {
		"name": "8100xxxx",
		"id": 1234
	},
	"event_severity": {
		"id": 0,
		"description": "INFO"
	},
	"sim": {
		"msisdn": "<msisdn>",
		"iccid": "<iccid>",
		"id": 12345678,
		"production_date": "2019-01-21T09:36:17Z"
	},
	"description": "Status of SIM changed from 'Activated' to 'Suspended'",
	"alert": false,
	"id": 1234567890,
  "user": null,
	"endpoint": {
		"tags": null,
		"ip_address": "<ip_address>",
		"name": "<name>",
		"imei": "<imei>",
		"id": 123456
	},
	"event_type": {
		"id": 9,
		"description": "SIM suspension"
	},
	"timestamp": "2019-01-21T09:36:17Z"
}"""

DATA_QUOTA_THRESHOLD_REACHED = """{
	"imsi": {
		"imsi": "<imsi>",
		"id": 12345678,
		"import_date": "2019-01-21T09:36:17Z"
	},
	"event_source": {
		"description": "Policy Control",
		"id": 1
	},
	"organisation": {
		"name": "8100xxxx",
		"id": 12345
	},
	"event_severity": {
		"id": 1,
		"description": "WARN"
	},
	"sim": {
		"msisdn": "<msisdn>",
		"iccid": "<iccid>",
		"id": 12345678,
		"production_date": "2019-01-21T09:36:17Z"
	},
	"description": "Endpoint quota threshold reached, volume is below 20%.",
	"alert": true,
	"id": 1234567890,
  "user": null,
	"detail": {
		"quota": {
			"threshold_volume": 118.983794,
			"volume": 118.968383,
			"threshold_percentage": 20
		}
	},
	"endpoint": {
		"tags": null,
		"ip_address": "<ip_address>",
		"name": "<name>",
		"imei": "<imei>",
		"id": 12345678
	},
	"event_type": {
		"id": 18,
		"description": "Quota threshold reached"
	},
	"timestamp": "2019-01-21T09:36:17Z"
}"""

UPDATE_LOCATION = """{
	"imsi": {
		"imsi": "<imsi>",
		"id": 123456,
		"import_date": "2019-01-21T09:36:17Z"
	},
	"event_source": {
		"description": "Network",
		"id": 0
	},
	"organisation": {
		"name": "8100xxxx",
		"id": 1234
	},
	"event_severity": {
		"id": 0,
		"description": "INFO"
	},
	"sim": {
		"msisdn": "<msisdn>",
		"iccid": "<iccid>",
		"id": 1234567,
		"production_date": "2019-01-21T09:36:17Z"
	},
	"description": "New location received from VLR for IMSI='<imsi>', now attached to VLR='<VLR>'.",
	"alert": false,
	"id": 1234567890,
  "user": null,
	"detail": {
		"mnc": [
			{
				"mnc": "20",
				"id": 327
			},
			{
				"mnc": "16",
				"id": 328
			}
		],
		"tapcode": [
			{
				"tapcode": "NLDDT",
				"id": 470
			},
			{
				"tapcode": "NLDPN",
				"id": 471
			}
		],
		"name": "T-Mobile",
		"country": {
			"iso_code": "nl",
			"country_code": "31",
			"name": "Netherlands",
			"id": 141,
			"mcc": "204"
		},
		"id": 730
	},
	"endpoint": {
		"tags": null,
		"ip_address": "<ip_address>",
		"name": "<name>",
		"imei": "<imei>",
		"id": 1234567
	},
	"event_type": {
		"id": 1,
		"description": "Update location"
	},
	"timestamp": "2019-01-21T09:36:17Z"
}"""


def with_iccid(payload: str, iccid: str) -> str:
    """A documented payload with a configured SIM's ICCID for its placeholder."""
    return payload.replace('"<icc>"', f'"{iccid}"').replace('"<iccid>"', f'"{iccid}"')
