"""The control panel tells the truth, judged in a real browser (tests/trading/browser.py)
against a live server and real processes."""

from tests.conftest import wait_for
from tests.trading.browser import BROWSER_MARKS, login
from tests.trading.roles import user_in

pytestmark = BROWSER_MARKS


def _health_badge(page, live_server, slug):
    page.goto(f"{live_server.url}/admin/")
    return page.locator(f'#td-health tr[data-health="{slug}"] .td-badge').inner_text().strip().lower()


def test_the_beat_badge_is_green_while_beat_runs_and_red_once_it_stops(browser, live_server, beat_process):
    from django.core.cache import cache

    from config.beat import HEARTBEAT_KEY, HEARTBEAT_SECONDS

    cache.delete(HEARTBEAT_KEY)
    user_in("viewer", "victor")
    context, page = login(browser, live_server, "victor")
    assert _health_badge(page, live_server, "celery-beat") == "down"  # never ran

    beat_process.start()
    wait_for(lambda: _health_badge(page, live_server, "celery-beat") == "ok", 30, interval=0.5, what="Beat green")
    # green for as long as it runs (several heartbeat intervals, checked each second)
    for _ in range(int(3 * HEARTBEAT_SECONDS)):
        assert _health_badge(page, live_server, "celery-beat") == "ok", beat_process.output()[-2000:]
        page.wait_for_timeout(1000)

    beat_process.stop()
    wait_for(
        lambda: _health_badge(page, live_server, "celery-beat") == "down",
        2 * HEARTBEAT_SECONDS + 5,
        interval=0.5,
        what="Beat red within two heartbeat intervals of stopping",
    )

    beat_process.start()
    wait_for(lambda: _health_badge(page, live_server, "celery-beat") == "ok", 30, interval=0.5, what="Beat green again")
    context.close()
