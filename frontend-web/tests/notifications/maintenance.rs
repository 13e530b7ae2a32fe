//! Maintenance windows: "in maintenance" on the overview, the installation
//! page and in the JSON API (`maintenance_until`), windows repeating and
//! deleted, and bad forms refused with what was typed kept.

use std::time::Duration;

use carewatch_core::team::Role;
use http::StatusCode;

use crate::common::Web;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_in_maintenance_say_so_on_the_overview_and_their_page() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    let viewer = web.browser("acme", "viewer", Role::Viewer).await;
    web.site("acme", "M01-C01-0001").await;
    web.site("acme", "M01-C01-0002").await;
    // Both are Pending (nothing reported yet), so both are on the overview.
    let created = web
        .post_as(
            &admin,
            "/maintenance",
            &[
                ("scope", "one"),
                ("slc", "M01-C01-0001"),
                ("starts", "2026-01-01T00:00"),
                ("length", "2"),
                ("unit", "hours"),
                ("repeat", "once"),
                ("reason", "Firmware update"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert!(created.body.contains("Maintenance set for M01-C01-0001"));
    // Listed with its reason, length, repetition, author and state.
    for text in ["Firmware update", "2 h", "once", "in force", ">admin<"] {
        assert!(created.body.contains(text), "{text}: {}", created.body);
    }

    let overview = web.get_as(&viewer, "/").await;
    let row = |body: &str, slc: &str| -> String {
        let from = body
            .find(&format!("id=\"row-{slc}\""))
            .unwrap_or_else(|| panic!("the row of {slc}: {body}"));
        let rest = &body[from..];
        rest[..rest.find("</tr>").expect("row end")].to_owned()
    };
    assert!(
        row(&overview.body, "M01-C01-0001").contains("in maintenance until"),
        "{}",
        overview.body
    );
    assert!(!row(&overview.body, "M01-C01-0002").contains("in maintenance"));
    let page = web.get_as(&viewer, "/installations/M01-C01-0001").await;
    assert!(page.body.contains("in maintenance"), "{}", page.body);
    assert!(page.body.contains("Firmware update"));
    let other = web.get_as(&viewer, "/installations/M01-C01-0002").await;
    assert!(!other.body.contains("in maintenance"));
    // The JSON API says so too.
    let token = web.reseller_token("acme").await;
    let list = web.api("/api/v1/installations", Some(&token)).await.json();
    let until = |slc: &str| {
        list["installations"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["slc"] == slc)
            .expect("listed")["maintenance_until"]
            .clone()
    };
    assert_eq!(until("M01-C01-0001"), "2026-01-01T02:00:00.000Z");
    assert!(until("M01-C01-0002").is_null());
    let detail = web
        .api("/api/v1/installations/M01-C01-0001", Some(&token))
        .await
        .json();
    assert_eq!(
        detail["installation"]["maintenance_until"],
        "2026-01-01T02:00:00.000Z"
    );

    // A window for all of them, repeating daily; the first one has ended.
    let all = web
        .post_as(
            &admin,
            "/maintenance",
            &[
                ("scope", "all"),
                ("slc", ""),
                ("starts", "2026-01-01T06:00"),
                ("length", "30"),
                ("unit", "minutes"),
                ("repeat", "daily"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert!(all.body.contains("all installations"));
    web.fixture.advance(Duration::from_secs(3 * 3600));
    let overview = web.get_as(&viewer, "/").await;
    assert!(
        !overview.body.contains("in maintenance until"),
        "the first is over"
    );
    let listed = web.get_as(&admin, "/maintenance").await;
    assert!(
        listed
            .body
            .contains("next from <time datetime=\"2026-01-01T06:00:00.000Z\""),
        "the daily one's next occurrence: {}",
        listed.body
    );
    web.fixture
        .advance(Duration::from_secs(24 * 3600 + 3 * 3600 + 60));
    // A day later: sessions have ended, so sign in anew.
    let viewer = web.browser("acme", "late-viewer", Role::Viewer).await;
    let admin = web.browser("acme", "late-admin", Role::Admin).await;
    let overview = web.get_as(&viewer, "/").await;
    assert!(row(&overview.body, "M01-C01-0001").contains("in maintenance until"));
    assert!(row(&overview.body, "M01-C01-0002").contains("in maintenance until"));

    // Deleting the windows ends the maintenance.
    let listed = web.get_as(&admin, "/maintenance").await;
    let ids: Vec<String> = listed
        .body
        .match_indices("id=\"window-")
        .map(|(at, _)| {
            let rest = &listed.body[at + "id=\"window-".len()..];
            rest[..rest.find('"').expect("quote")].to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{}", listed.body);
    assert!(listed.body.contains("over"), "the once window is over");
    for id in &ids {
        let deleted = web
            .post_as(&admin, "/maintenance/delete", &[("id", id.as_str())])
            .await;
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    }
    let overview = web.get_as(&viewer, "/").await;
    assert!(!overview.body.contains("in maintenance"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_maintenance_forms_are_refused_with_the_form_kept() {
    let web = Web::new().await;
    let admin = web.browser("acme", "admin", Role::Admin).await;
    for (fields, expect) in [
        (
            vec![("starts", "tomorrow"), ("length", "1"), ("unit", "hours")],
            "not a date and time",
        ),
        (
            vec![
                ("starts", "2026-01-01T00:00"),
                ("length", "0"),
                ("unit", "hours"),
            ],
            "1 minute to 30 days",
        ),
        (
            vec![
                ("starts", "2026-01-01T00:00"),
                ("length", "31"),
                ("unit", "days"),
            ],
            "1 minute to 30 days",
        ),
    ] {
        let mut all = vec![
            ("scope", "all"),
            ("repeat", "once"),
            ("reason", "Kept reason"),
        ];
        all.extend(fields);
        let page = web.post_as(&admin, "/maintenance", &all).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "{expect}: {}",
            page.body
        );
        assert!(page.body.contains(expect), "{expect}: {}", page.body);
        assert!(page.body.contains("value=\"Kept reason\""));
    }
    let page = web.get_as(&admin, "/maintenance").await;
    assert!(page.body.contains("No maintenance windows."));
}
