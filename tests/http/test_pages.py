"""The status page's HTML, pure: worst first, escaped, filters, a chart, forms with CSRF.
The page in a real browser (layout on a phone, the flows) is tested end to end with
Chromium; here the HTML itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from monitor.config import Settings, load
from monitor.forecast import Forecast
from monitor.http import pages
from monitor.model import Controls, Level
from monitor.store.ledger import Recharge
from monitor.store.views import EventRow, HistoryRow, LineStatus

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
CONFIG = """
[monitor]
timezone = "America/New_York"

[accounts.fleet]
provider = "airalo"
client_id = "id"
client_secret = "s3cret-client"

[lines.travel]
label = "US travel <eSIM>"
adapter = "demo"
payment_url = "https://pay.example/top-up?line=1&x=2"

[lines.home]
label = "Home number"
adapter = "demo"
payment_url = "javascript:alert(1)"

[lines.iot]
account = "fleet"
iccid = "8944465400000267221"

[lines.new]
adapter = "demo"
"""


@pytest.fixture
def settings(write_config: Callable[..., Path]) -> Settings:
    return load(write_config(CONFIG))


def known() -> dict[str, LineStatus]:
    return {
        "travel": LineStatus(
            "travel",
            Level.CRITICAL,
            checked_at=NOW - timedelta(minutes=5),
            balance=Decimal("1.50"),
            currency="USD",
            data_remaining=200 * 10**6,
            data_total=10**9,
            forecasts={
                "data": Forecast("data", Decimal(10**8), NOW + timedelta(days=2)),
            },
            controls=Controls(snoozed_until=NOW + timedelta(hours=1)),
        ),
        "home": LineStatus(
            "home",
            Level.OK,
            checked_at=NOW - timedelta(hours=2),
            failures=3,
            last_error="timeout <after 20 s>",
        ),
        "iot": LineStatus("iot", Level.WARNING, checked_at=NOW, balance=Decimal("9")),
    }


class Tags(HTMLParser):
    """The page parsed: that it is well formed enough to parse, and what it links."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.starts


def test_the_overview_lists_worst_first_with_a_word_for_each_state(settings: Settings) -> None:
    html = pages.overview(settings, known(), NOW)
    order = re.findall(r'<tr class="(\w+)">', html)
    assert order == ["critical", "warning", "failing", "unknown"]
    assert '<span class="badge critical">critical</span>' in html
    assert "4 lines:" in html and ">1 critical</a>" in html and ">1 failing</a>" in html


def test_the_overview_shows_figures_forecast_age_snooze_and_payment(settings: Settings) -> None:
    html = pages.overview(settings, known(), NOW)
    travel = html.split('<tr class="critical">')[1].split("</tr>")[0]
    assert "1.50 USD" in travel and "200 MB of 1 GB" in travel
    assert "data runs out in ~2 days (on 2026-12-05)" in travel
    assert "(5 minutes ago)" in travel
    assert "2026-12-03 06:55" in travel  # 11:55 UTC in New York
    assert "snoozed until 2026-12-03 08:00" in travel
    assert 'href="https://pay.example/top-up?line=1&amp;x=2"' in travel


def test_everything_from_outside_is_escaped_and_no_script_link_is_made(
    settings: Settings,
) -> None:
    html = pages.overview(settings, known(), NOW)
    assert "US travel &lt;eSIM&gt;" in html and "<eSIM>" not in html
    assert "javascript:" not in html
    page = pages.line_page(
        settings, known()["home"], [], [], [], "<script>x</script>", NOW, csrf="tok"
    )
    assert "timeout &lt;after 20 s&gt;" in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script" not in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "critical"}, ["travel"]),
        ({"state": "failing"}, ["home"]),
        ({"account": "fleet"}, ["iot"]),
        ({"q": "NUMBER"}, ["home"]),
        ({"state": "nonsense"}, ["travel", "iot", "home", "new"]),
        ({"q": "nothing like it"}, []),
    ],
)
def test_the_filter(settings: Settings, query: dict[str, str], expected: list[str]) -> None:
    html = pages.overview(settings, known(), NOW, pages.Filter.of(query))
    shown = re.findall(r'<a href="/lines/([\w-]+)">', html)
    assert shown == expected
    if not expected:
        assert "No line matches this filter." in html


def test_a_large_fleet_is_paged_worst_first_with_counts_over_every_line(
    write_config: Callable[..., Path],
) -> None:
    lines = "".join(f'[lines.l{i:03}]\nadapter = "demo"\n' for i in range(450))
    settings = load(write_config(lines))
    bad = {"l449": LineStatus("l449", Level.CRITICAL), "l300": LineStatus("l300", Level.WARNING)}

    def shown(query: dict[str, str]) -> tuple[list[str], str]:
        html = pages.overview(settings, bad, NOW, pages.Filter.of(query))
        return re.findall(r'<a href="/lines/(\w+)">', html), html

    first, html = shown({})
    assert len(first) == pages.PAGE_SIZE and first[:3] == ["l449", "l300", "l000"]
    assert "450 lines:" in html and ">1 critical</a>" in html and ">448 unknown</a>" in html
    assert "Lines 1-200 of 450 (page 1 of 3)" in html and 'href="/?page=2" rel="next"' in html
    assert 'rel="prev"' not in html
    last, html = shown({"page": "3"})
    assert last == [f"l{i:03}" for i in range(399, 449)]
    assert 'href="/?page=2" rel="prev"' in html and 'rel="next"' not in html
    assert shown({"page": "99"})[0] == last  # past the end: the last page
    for nonsense in ("0", "-1", "x", "²", "9" * 12):
        assert shown({"page": nonsense})[0] == first
    paged, html = shown({"state": "unknown", "q": "l", "page": "2"})
    assert paged[0] == "l200" and 'href="/?state=unknown&amp;q=l&amp;page=3"' in html
    assert 'href="/?state=unknown&amp;q=l" rel="prev"' in html
    few, html = shown({"state": "critical"})
    assert few == ["l449"] and 'class="pager"' not in html


def test_every_action_form_posts_with_the_csrf_token(settings: Settings) -> None:
    html = pages.line_page(settings, known()["travel"], [], [], [], None, NOW, csrf="tok-1")
    forms = [attrs for tag, attrs in tags(html) if tag == "form"]
    actions = {f["action"] for f in forms if f.get("action", "").startswith("/lines/")}
    assert actions == {
        f"/lines/travel/{a}" for a in ("snooze", "ack", "unsnooze", "check", "record")
    }
    assert all(f["method"] == "post" for f in forms)
    assert html.count('name="csrf" value="tok-1"') == len(forms)


def test_the_line_page_charts_its_window_and_marks_top_ups_and_renewals(
    settings: Settings,
) -> None:
    def row(days: float, balance: str, expires: datetime) -> HistoryRow:
        return HistoryRow(
            NOW - timedelta(days=days),
            True,
            Level.OK,
            Decimal(balance),
            "USD",
            5 * 10**8,
            10**9,
            expires,
            None,
            None,
        )

    first, renewed = NOW + timedelta(days=3), NOW + timedelta(days=33)
    history = [row(40, "9", first), row(6, "8", first), row(2, "2", first), row(1, "10", renewed)]
    topup = Recharge(
        "travel",
        "k",
        "confirmed",
        "provider",
        NOW - timedelta(days=1, hours=1),
        amount=Decimal("10"),
        currency="USD",
        settled_at=NOW - timedelta(days=1),
    )
    event = EventRow(
        1,
        NOW - timedelta(days=1),
        "travel",
        "balance-low",
        "Balance low",
        "phone",
        "sent",
        1,
        NOW - timedelta(days=1),
        None,
        None,
    )
    html = pages.line_page(
        settings, known()["travel"], history, [event], [topup], None, NOW, csrf="t"
    )
    charts = re.findall(r"<svg.*?</svg>", html)
    assert len(charts) == 2
    balance = charts[0]
    assert "from 3 readings" in balance  # the reading 40 days ago is outside 7d
    assert balance.count('class="mark"') == 2
    assert "top-up" in balance and "renewal" in balance
    assert "balance-low" in html and "sent 2026-12-02 07:00" in html
    assert "confirmed" in html and "10 USD" in html
    wide = pages.line_page(settings, known()["travel"], history, [], [], None, NOW, "90d", csrf="t")
    assert "from 4 readings" in re.findall(r"<svg.*?</svg>", wide)[0]


def test_the_stylesheet_ships_in_the_package_and_nothing_comes_from_the_internet(
    settings: Settings,
) -> None:
    assert b".badge" in pages.asset("style.css")
    with pytest.raises(KeyError):
        pages.asset("../config.py")
    html = (
        pages.overview(settings, known(), NOW)
        + pages.line_page(settings, known()["travel"], [], [], [], None, NOW, csrf="t")
        + pages.login()
    )
    for tag, attrs in tags(html):
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            if tag in ("link", "script", "img") and value:
                assert value.startswith("/"), (tag, value)
