"""The reseller's web dashboard in a real browser (Debian's Chromium, driven by
Playwright) against a real `carewatch serve`: signing in through an
invitation and with the login form, the overview of what needs attention,
live updates from a simulated recording server, the installation page, roles,
tenants, signing out, and screenshots for people to look at.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from conftest import (
    STORAGE_FULL, Person, Provisioned, Server, Sites, new_context,
)

# The page's live state once its event stream is open (live.js).
CONNECTED = "#live-status.connected"


def rows_shown(page: Any) -> List[str]:
    """The SLCs of the overview's rows, in order."""
    ids: List[str] = page.eval_on_selector_all(
        "#overview-rows tr", "rows => rows.map(r => r.id)"
    )
    return [i.removeprefix("row-") for i in ids]


def health_of(page: Any, slc: str) -> str:
    return str(page.get_attribute(f"#row-{slc}", "data-health"))


def test_the_invitation_link_sets_a_password_and_signs_in(admin: Person, server: Server) -> None:
    assert admin.landed_status == 200
    assert admin.landed_at == f"{server.base_url}/"
    page = admin.context.new_page()
    page.goto("/")
    assert page.locator("h1").inner_text() == "Installations needing attention"
    assert "admin@acme.example" in page.locator(".account .who").inner_text()
    nav = page.locator("header.site nav").inner_text()
    assert "Team" in nav and "API tokens" in nav
    cookie = next(c for c in admin.context.cookies() if c["name"] == "carewatch_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    page.close()


def test_the_login_form_signs_in_and_sign_out_ends_the_session(
    browser: Any, server: Server, admin: Person, provisioned: Provisioned
) -> None:
    context = new_context(browser, server)
    page = context.new_page()
    page.goto("/")
    assert page.url.endswith("/login"), "signed out, the overview sends to the login page"
    page.fill("#login", admin.login)
    page.fill("#password", admin.password)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    assert page.url == f"{server.base_url}/"
    assert page.locator("h1").inner_text() == "Installations needing attention"
    session = next(c for c in context.cookies() if c["name"] == "carewatch_session")

    with page.expect_navigation():
        page.click("form.signout button[type=submit]")
    assert page.url.endswith("/login")
    assert not [c for c in context.cookies() if c["name"] == "carewatch_session"]
    context.close()

    # The old cookie, kept by somebody, opens nothing any more.
    stolen = new_context(browser, server)
    stolen.add_cookies([{**session, "expires": int(time.time()) + 3600}])
    page = stolen.new_page()
    for path in ["/", f"/installations/{provisioned.sites.full}", "/team"]:
        response = page.goto(path)
        assert page.url.endswith("/login"), f"{path} opened with a signed-out session"
        assert response is not None and response.status == 200
        assert page.locator("h1").inner_text() == "Sign in"
    stolen.close()

    # The other session (the invitation's) is untouched.
    other = admin.context.new_page()
    other.goto("/")
    assert other.url == f"{server.base_url}/"
    other.close()


def test_the_overview_lists_only_installations_that_are_not_healthy(
    admin: Person, provisioned: Provisioned
) -> None:
    sites = provisioned.sites
    page = admin.context.new_page()
    page.goto("/")
    shown = rows_shown(page)
    assert sites.full in shown and sites.pending in shown
    assert sites.healthy not in shown, (
        f"a Healthy installation is listed by default (heartbeat trouble: {provisioned.fleet.errors})"
    )
    assert sites.other not in shown, "another reseller's installation is listed"
    assert all(page.get_attribute(f"#row-{s}", "data-health") != "healthy" for s in shown)
    assert health_of(page, sites.pending) == "pending"
    full = page.locator(f"#row-{sites.full}")
    assert "STORAGE_FULL" in full.inner_text()
    assert "never" in page.locator(f"#row-{sites.pending}").inner_text()
    # Worst first: the full disk before the one that never reported.
    assert shown.index(sites.full) < shown.index(sites.pending)
    # The totals at the top: "need attention" counts exactly the rows.
    totals = page.locator("nav.totals")
    need = totals.locator("a[href='/'] .count").inner_text()
    assert int(need) == len(shown)

    # "in all" lists the healthy ones too, and still not globex's.
    with page.expect_navigation():
        page.click("nav.totals a[href='/?all=true']")
    shown_all = rows_shown(page)
    assert sites.healthy in shown_all and sites.full in shown_all
    assert sites.other not in shown_all
    assert health_of(page, sites.healthy) == "healthy"
    page.close()


def test_a_storage_full_report_appears_on_the_open_page_within_a_second(
    admin: Person, provisioned: Provisioned
) -> None:
    slc = provisioned.sites.live
    attention = admin.context.new_page()   # the default overview: the row is not there yet
    everything = admin.context.new_page()  # "in all": the row is there, Healthy
    attention.goto("/")
    everything.goto("/?all=true")
    for page in (attention, everything):
        page.wait_for_selector(CONNECTED)
        # Anything a reload would lose.
        page.evaluate("window.__notReloaded = true")
    assert slc not in rows_shown(attention)
    assert health_of(everything, slc) == "healthy"

    sent = time.monotonic()
    ack = provisioned.fleet.status(slc, "rs-1", STORAGE_FULL)
    assert not ack.duplicate
    everything.wait_for_selector(f"#row-{slc}:not([data-health='healthy'])", timeout=5_000)
    changed_after = time.monotonic() - sent
    attention.wait_for_selector(f"#row-{slc}", timeout=5_000)
    appeared_after = time.monotonic() - sent

    print(f"\nrow changed in place after {changed_after:.3f} s, "
          f"appeared after {appeared_after:.3f} s")
    assert changed_after < 1.0, f"the row changed {changed_after:.2f} s after the report"
    assert appeared_after < 1.0, f"the row appeared {appeared_after:.2f} s after the report"
    for page in (attention, everything):
        assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        row = page.locator(f"#row-{slc}")
        assert "STORAGE_FULL" in row.inner_text()
        assert "updated" in (row.get_attribute("class") or ""), "the row is not highlighted"
    # In the default view it takes its place: worst first, like a fresh read.
    assert health_of(attention, slc) == health_of(attention, provisioned.sites.full)
    attention.close()
    everything.close()


def test_the_installation_page_shows_servers_conditions_and_history(
    admin: Person, provisioned: Provisioned
) -> None:
    slc = provisioned.sites.full
    page = admin.context.new_page()
    page.goto("/")
    with page.expect_navigation():
        page.click(f"#row-{slc} a")
    assert page.url.endswith(f"/installations/{slc}")
    assert page.locator("h1").inner_text() == f"Installation {slc}"

    facts = page.locator("dl.facts").inner_text()
    assert "STORAGE_FULL" in facts
    assert "active until" in facts and "accepted" in facts
    assert "XProtect Corporate 2016" in facts

    servers = page.locator("table.records").nth(0)
    headers = [h.strip() for h in servers.locator("th[scope=col]").all_text_contents()]
    assert headers[:2] == ["Server", "Availability"]
    rows = servers.locator("tbody tr")
    assert rows.count() == 2
    assert sorted(rows.locator("th").all_inner_texts()) == ["rs-1", "rs-2"]
    assert rows.locator("td[data-label=Availability]").all_inner_texts() == ["available"] * 2
    assert rows.locator("td[data-label=Interval]").all_inner_texts() == ["1 s"] * 2
    assert rows.locator("td[data-label='Last seen']").all_inner_texts() == ["just now"] * 2

    conditions = page.locator("table.records").nth(1).locator("tbody tr")
    assert conditions.count() == 1
    condition = conditions.inner_text()
    assert "STORAGE_FULL" in condition and "D:\\Recordings" in condition
    assert "rs-1" in condition and "100% used" in condition

    history = page.locator("ol.timeline").inner_text()
    assert "reported for the first time" in history
    assert "opened CAMERA_UNREACHABLE on Camera 7" in history
    assert "resolved CAMERA_UNREACHABLE on Camera 7" in history
    assert "opened STORAGE_FULL on D:\\Recordings" in history
    page.wait_for_selector(CONNECTED)
    page.close()


def test_a_viewer_cannot_reach_admin_pages(viewer: Person, server: Server) -> None:
    assert viewer.landed_at == f"{server.base_url}/" and viewer.landed_status == 200
    page = viewer.context.new_page()
    page.goto("/")
    assert "(viewer)" in page.locator(".account").inner_text()
    nav = page.locator("header.site nav").inner_text()
    assert "Team" not in nav and "API tokens" not in nav
    for path in ["/team", "/tokens"]:
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        assert page.url.endswith(path)
        assert page.locator("p.error-message").is_visible()
        assert page.locator("form[action='/team/invite']").count() == 0
        assert page.locator("form[action='/tokens']").count() == 0
    page.close()


def test_another_resellers_installation_is_a_404_like_a_missing_one(
    admin: Person, provisioned: Provisioned
) -> None:
    page = admin.context.new_page()
    bodies = []
    for slc in [provisioned.sites.other, "BRW-MISSING-99"]:
        response = page.goto(f"/installations/{slc}")
        assert response is not None and response.status == 404, slc
        # The same page as for a missing one, but for the address asked for.
        bodies.append(page.locator("main").inner_html().replace(slc, "<SLC>"))
    assert "<SLC>" not in bodies[0] or "Installation <SLC> not found" in bodies[0]
    assert bodies[0] == bodies[1], "another reseller's installation differs from a missing one"
    page.close()


def test_screenshots_of_the_overview(
    browser: Any, server: Server, admin: Person, provisioned: Provisioned, screenshots: Path
) -> None:
    """Saved for people to look at: desktop, a 360 px phone, dark mode."""
    cookies = admin.context.cookies()
    shots: List[Tuple[str, Dict[str, Any]]] = [
        ("overview.png", {"viewport": {"width": 1280, "height": 720}}),
        ("overview-phone.png", {"viewport": {"width": 360, "height": 740},
                                "device_scale_factor": 2, "is_mobile": True, "has_touch": True}),
        ("overview-dark.png", {"viewport": {"width": 1280, "height": 720},
                               "color_scheme": "dark"}),
    ]
    for name, options in shots:
        context = new_context(browser, server, **options)
        context.add_cookies(cookies)
        page = context.new_page()
        page.goto("/")
        page.wait_for_selector(CONNECTED)
        assert provisioned.sites.full in rows_shown(page)
        path = screenshots / name
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"{path} looks empty"
        if name == "overview-phone.png":
            width = page.evaluate("document.documentElement.scrollWidth")
            print(f"\nphone: the page is {width} px wide in a 360 px viewport")
            page.goto(f"/installations/{provisioned.sites.full}")
            page.screenshot(path=str(screenshots / "installation-phone.png"), full_page=True)
        if name == "overview.png":
            page.goto(f"/installations/{provisioned.sites.full}")
            page.screenshot(path=str(screenshots / "installation.png"), full_page=True)
        context.close()


def test_after_saving_labels_the_page_keeps_its_address_and_stays_live(
    admin: Person, server: Server, provisioned: Provisioned
) -> None:
    """A form's answer is shown at the form's (POST-only) address: live.js
    puts the page's own address back, so live updates keep re-reading the
    page and a reload reads it rather than sending the form again."""
    slc = provisioned.sites.healthy
    page = admin.context.new_page()
    page.goto(f"/installations/{slc}")
    page.wait_for_selector(CONNECTED)
    page.click("details.labels-form summary")
    page.fill("#customer", "Harbour Mall")
    with page.expect_navigation():
        page.click("details.labels-form button[type=submit]")
    page.wait_for_selector(CONNECTED)
    assert page.url == f"{server.base_url}/installations/{slc}", page.url
    page.evaluate("window.__notReloaded = true")

    provisioned.fleet.status(slc, "rs-1", STORAGE_FULL)
    # (A selector, not wait_for_function: the page's CSP forbids eval.)
    page.wait_for_selector("dl.facts:has-text('STORAGE_FULL')", timeout=5_000)
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"

    response = page.reload()
    assert response is not None and response.status == 200
    assert response.request.method == "GET", "the reload sent the form again"
    assert page.url.endswith(f"/installations/{slc}")
    provisioned.fleet.status(slc, "rs-1", [])
    page.close()


def test_a_label_change_shows_on_the_open_overview(
    admin: Person, provisioned: Provisioned
) -> None:
    """Labels come as "change" events: the overview ignored them, and a row
    kept its old customer until its health next changed."""
    slc = provisioned.sites.healthy
    overview = admin.context.new_page()
    overview.goto("/?all=true")
    overview.wait_for_selector(CONNECTED)
    overview.evaluate("window.__notReloaded = true")
    editor = admin.context.new_page()
    editor.goto(f"/installations/{slc}")
    editor.click("details.labels-form summary")
    editor.fill("#customer", "Quay Street Clinic")
    with editor.expect_navigation():
        editor.click("details.labels-form button[type=submit]")
    overview.wait_for_selector(
        f"#row-{slc}:has-text('Quay Street Clinic')", timeout=5_000
    )
    assert overview.evaluate("window.__notReloaded === true"), "the page was reloaded"
    editor.close()
    overview.close()


def test_reloading_a_created_channel_does_not_create_it_again(admin: Person) -> None:
    """The answer to a form is shown at the form's address: a reload sent
    the form again, and made a second channel with a second secret."""
    page = admin.context.new_page()
    page.goto("/channels")
    page.fill("#new-channel-name", "reload check")
    page.select_option("#new-channel-kind", "webhook")
    page.fill("#new-channel-target", "https://hooks.example.net/reload")
    with page.expect_navigation():
        page.click("button:has-text('Create channel')")
    assert page.locator("table.channels th:has-text('reload check')").count() == 1
    response = page.reload()
    assert response is not None and response.status == 200
    assert response.request.method == "GET", "the reload sent the form again"
    assert page.locator("table.channels th:has-text('reload check')").count() == 1
    page.close()
