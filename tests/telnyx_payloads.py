"""Telnyx webhook bodies as Telnyx publishes them, verbatim, for the pure webhook tests and
the end-to-end ones. Telnyx documents no SIM card event, so these are the events its own
SDKs verify in their tests:

- `GO_SDK_EVENT`: team-telnyx/telnyx-go, lib/webhook_verification_test.go
  (TestVerifyWebhookSignature_ValidSignature), the `{"data": {...}}` envelope of every
  event in the OpenAPI spec's `webhooks`;
- `PYTHON_SDK_EVENT`: team-telnyx/telnyx-python, tests/api_resources/test_webhooks.py
  (generated from the OpenAPI spec), a `conference.floor.changed` event without the
  envelope.
"""

from __future__ import annotations

GO_SDK_EVENT = b'{"data":{"id":"test-id","event_type":"call.initiated"}}'

PYTHON_SDK_EVENT = b"""{"id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0","event_type":"conference.floor.changed","payload":{"call_control_id":"v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg","call_leg_id":"428c31b6-7af4-4bcb-b7f5-5013ef9657c1","call_session_id":"428c31b6-7af4-4bcb-b7f5-5013ef9657c1","client_state":"aGF2ZSBhIG5pY2UgZGF5ID1d","conference_id":"428c31b6-abf3-3bc1-b7f4-5013ef9657c1","connection_id":"7267xxxxxxxxxxxxxx","occurred_at":"2018-02-02T22:25:27.521Z"},"record_type":"event"}"""  # noqa: E501
