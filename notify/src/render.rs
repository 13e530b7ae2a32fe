//! Chat and email renderings of a notification. The webhook gets the JSON
//! document itself; these only reformat what it says, escaping everything
//! that came from outside (SLCs, subjects, server ids, product names).

use carewatch_core::notification::payload::{ConditionPart, Notification};
use serde_json::json;

/// Slack's `&`, `<` and `>` escapes (its mrkdwn treats `<…>` as links).
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// HTML escaping for text and attribute values.
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A Slack incoming-webhook message: `{"text": …}`, the title in bold.
pub(crate) fn slack(n: &Notification) -> String {
    let text = format!("*{}*\n{}", slack_escape(&n.title), slack_escape(&n.text));
    json!({ "text": text }).to_string()
}

/// A Teams incoming-webhook message (a MessageCard, which Teams' incoming
/// webhooks accept).
pub(crate) fn teams(n: &Notification) -> String {
    let colour = match n.kind.as_str() {
        "resolved" => "2EB886",
        "test" => "0078D7",
        _ => "D63333",
    };
    // MessageCard text is Markdown: a blank line between paragraphs, and
    // HTML-looking text escaped.
    let text = n
        .text
        .lines()
        .map(html_escape)
        .collect::<Vec<_>>()
        .join("\n\n");
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": n.title,
        "themeColor": colour,
        "title": html_escape(&n.title),
        "text": text,
    })
    .to_string()
}

/// The email's text part.
pub(crate) fn email_text(n: &Notification) -> String {
    let mut out = format!("{}\n\n{}\n", n.title, n.text);
    if let Some(r) = &n.resolved {
        out.push_str(&format!(
            "\nThe problem ({}) began at {} and ended at {} ({}).\n",
            r.was,
            r.problem_since,
            r.recovered_at,
            lasted(r.lasted_seconds)
        ));
    }
    if !n.servers_down.is_empty() {
        out.push_str("\nUnavailable recording servers:\n");
        for s in &n.servers_down {
            out.push_str(&format!(
                "  - {}: unavailable since {} ({} heartbeats missed)\n",
                s.id, s.since, s.missed
            ));
        }
    }
    // Servers' own unavailability is in the list above.
    let conditions: Vec<_> = reported_conditions(n).collect();
    if !conditions.is_empty() {
        out.push_str("\nActive conditions:\n");
        for c in conditions {
            out.push_str(&format!(
                "  - {} on {} ({}), since {}\n",
                c.code, c.subject, c.server, c.since
            ));
        }
    }
    if let Some(i) = &n.installation {
        out.push_str(&format!(
            "\nInstallation {} ({}): {}, {} of {} recording servers unavailable, {} late.\n",
            i.slc, i.product, i.health, i.unavailable, i.servers, i.late
        ));
    }
    out.push_str(&format!(
        "\n-- \nCarewatch notification ({}) at {}\nId: {}\n",
        n.kind, n.at, n.id
    ));
    out
}

/// The email's HTML part: the same content, every value escaped.
pub(crate) fn email_html(n: &Notification) -> String {
    let e = html_escape;
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family:sans-serif\">\n",
    );
    out.push_str(&format!("<h2>{}</h2>\n<p>", e(&n.title)));
    out.push_str(&n.text.lines().map(e).collect::<Vec<_>>().join("<br>\n"));
    out.push_str("</p>\n");
    if let Some(r) = &n.resolved {
        out.push_str(&format!(
            "<p>The problem ({}) began at {} and ended at {} ({}).</p>\n",
            e(&r.was),
            e(&r.problem_since),
            e(&r.recovered_at),
            lasted(r.lasted_seconds)
        ));
    }
    if !n.servers_down.is_empty() {
        out.push_str(
            "<h3>Unavailable recording servers</h3>\n<table border=\"1\" cellpadding=\"4\">\
             <tr><th>Server</th><th>Unavailable since</th><th>Heartbeats missed</th></tr>\n",
        );
        for s in &n.servers_down {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(&s.id),
                e(&s.since),
                s.missed
            ));
        }
        out.push_str("</table>\n");
    }
    let conditions: Vec<_> = reported_conditions(n).collect();
    if !conditions.is_empty() {
        out.push_str(
            "<h3>Active conditions</h3>\n<table border=\"1\" cellpadding=\"4\">\
             <tr><th>Condition</th><th>Subject</th><th>Server</th><th>Since</th></tr>\n",
        );
        for c in conditions {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(&c.code),
                e(&c.subject),
                e(&c.server),
                e(&c.since)
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str(&format!(
        "<p style=\"color:#666;font-size:small\">Carewatch notification ({}) at {}<br>Id: {}</p>\n\
         </body></html>\n",
        e(&n.kind),
        e(&n.at),
        e(&n.id)
    ));
    out
}

/// The conditions a message lists: all but the servers' own unavailability.
fn reported_conditions(n: &Notification) -> impl Iterator<Item = &ConditionPart> {
    n.conditions.iter().filter(|c| !c.is_server_unavailable())
}

fn lasted(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carewatch_core::notification::payload::{SCHEMA, ServerPart};

    fn hostile() -> Notification {
        Notification {
            schema: SCHEMA.into(),
            id: "k1".into(),
            kind: "problem".into(),
            at: "2030-01-01T00:00:00.000Z".into(),
            reseller: "acme".into(),
            title: "M01 <b>is</b> Critical & \"bad\"".into(),
            text: "line <script>alert(1)</script>\nsecond".into(),
            installation: None,
            servers_down: Vec::new(),
            conditions: vec![ConditionPart {
                server: "rs-1".into(),
                code: "STORAGE_FULL".into(),
                subject: "<img src=x onerror=alert(1)>".into(),
                since: "2030-01-01T00:00:00.000Z".into(),
            }],
            resolved: None,
        }
    }

    #[test]
    fn html_and_chat_escape_what_came_from_outside() {
        let n = hostile();
        let html = email_html(&n);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("M01 &lt;b&gt;is&lt;/b&gt; Critical &amp; &quot;bad&quot;"));
        let slack: serde_json::Value = serde_json::from_str(&slack(&n)).unwrap_or_default();
        let text = slack["text"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("*M01 &lt;b&gt;is&lt;/b&gt; Critical &amp;"),
            "{text}"
        );
        let teams: serde_json::Value = serde_json::from_str(&teams(&n)).unwrap_or_default();
        assert_eq!(teams["@type"], "MessageCard");
        assert!(
            !teams["text"]
                .as_str()
                .unwrap_or_default()
                .contains("<script>")
        );
        assert_eq!(teams["summary"], n.title);
    }

    #[test]
    fn a_servers_own_unavailability_is_listed_once_in_an_email() {
        let mut n = hostile();
        n.servers_down = vec![ServerPart {
            id: "rs-2".into(),
            since: "2030-01-01T00:00:00.000Z".into(),
            missed: 3,
        }];
        n.conditions.push(ConditionPart {
            server: "rs-2".into(),
            code: "SERVER_UNAVAILABLE".into(),
            subject: "rs-2".into(),
            since: "2030-01-01T00:00:00.000Z".into(),
        });
        let (text, html) = (email_text(&n), email_html(&n));
        assert!(text.contains("rs-2: unavailable since"), "{text}");
        assert!(!text.contains("SERVER_UNAVAILABLE"), "{text}");
        assert!(text.contains("STORAGE_FULL"), "{text}");
        assert!(!html.contains("SERVER_UNAVAILABLE"), "{html}");
        assert!(html.contains("STORAGE_FULL"), "{html}");
    }
}
