"""The embedded HTTP server: the phone relay, provider webhooks and the status page.

Off unless `[http] listen` is set; started by `run` in the daemon's process, on threads of
its own (waitress), so it never holds up the checks or the watchdog. It sits behind a
reverse proxy for TLS (docs/http.md).

- `app`: the request logic, pure (a `Request` in, a `Response` out): routing, the body
  bound, the per-source rate limit, authentication, a one-line reason on every 4xx.
- `relay`: what a relay request's body says (plain text, a form or JSON).
- `proxies`: who sent a request: the peer, or behind `[http] trusted_proxies` the client
  their X-Forwarded-For names.
- `web`: the status page's routes behind its login (`auth`): pages, JSON API, actions.
- `auth`: password hashes, session and API tokens, CSRF tokens, signed links (pure).
- `pages`, `chart`: the page's HTML and SVG (pure).
- `wsgi`: WSGI to `Request` and back, and the access log (no secret in it).
- `server`: waitress on its thread; started, stopped within a bound.

It knows nothing of SQL: it calls `monitor.relay`, `monitor.hooks` (which reads providers'
payloads with `monitor.webhooks`) and `monitor.dashboard`; they go through the store.
"""
