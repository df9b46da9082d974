"""The embedded HTTP server: the phone relay and provider webhooks (the status page later).

Off unless `[http] listen` is set; started by `run` in the daemon's process, on threads of
its own (waitress), so it never holds up the checks or the watchdog. It sits behind a
reverse proxy for TLS (docs/http.md).

- `app`: the request logic, pure (a `Request` in, a `Response` out): routing, the body
  bound, the per-source rate limit, authentication, a one-line reason on every 4xx.
- `relay`: what a relay request's body says (plain text, a form or JSON).
- `proxies`: who sent a request: the peer, or behind `[http] trusted_proxies` the client
  their X-Forwarded-For names.
- `wsgi`: WSGI to `Request` and back, and the access log (no secret in it).
- `server`: waitress on its thread; started, stopped within a bound.

It knows nothing of SQL: it calls `monitor.relay` and `monitor.hooks` (which read
providers' payloads with `monitor.webhooks`), and they record through the store.
"""
