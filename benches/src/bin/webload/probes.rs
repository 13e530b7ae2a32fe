//! The page and API probes: what each kind of request asks, and their latencies.

use super::*;

pub(crate) fn bearer_header(token: &str) -> (header::HeaderName, String) {
    (header::AUTHORIZATION, format!("Bearer {token}"))
}

/// How a kind of request is authenticated.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Auth {
    /// The admin's session cookie (the web page).
    Session,
    /// The reseller's token (the JSON API).
    Bearer,
}

/// The requests measured: name, path, credential, and text the body must hold.
pub(crate) const KINDS: [(&str, &str, Auth, &str); 5] = [
    (
        "page `/` (not Healthy, 50 rows)",
        "/",
        Auth::Session,
        "Installations needing attention",
    ),
    (
        "page `/?all=1` (50 rows)",
        "/?all=1",
        Auth::Session,
        "All installations",
    ),
    (
        "page `/?all=1&q=0042` (search)",
        "/?all=1&q=0042",
        Auth::Session,
        "matching",
    ),
    (
        "JSON `/api/v1/installations` (50 rows)",
        "/api/v1/installations",
        Auth::Bearer,
        "\"totals\"",
    ),
    (
        "JSON `?all=1&limit=100`",
        "/api/v1/installations?all=1&limit=100",
        Auth::Bearer,
        "\"totals\"",
    ),
];

/// The admin's session and the reseller's token.
pub(crate) struct Bench {
    pub(crate) session: String,
    pub(crate) reseller_token: String,
}

/// Latencies of one kind, in microseconds.
pub(crate) type Latencies = Vec<(&'static str, Vec<u32>)>;

impl Bench {
    pub(crate) fn credential(&self, auth: Auth) -> (header::HeaderName, String) {
        match auth {
            Auth::Session => cookie_header(SESSION_COOKIE, &self.session),
            Auth::Bearer => bearer_header(&self.reseller_token),
        }
    }

    /// Every kind in turn, one request at a time: warm-up, then measured.
    pub(crate) async fn latencies(
        &self,
        web: &mut carewatch_benches::web::Connection,
        args: &Args,
    ) -> Result<Latencies, BoxError> {
        let mut out: Latencies = KINDS
            .iter()
            .map(|k| (k.0, Vec::with_capacity(args.requests)))
            .collect();
        for round in 0..args.warmup_requests + args.requests {
            for (n, (name, path, auth, must_hold)) in KINDS.iter().enumerate() {
                let credential = self.credential(*auth);
                let began = Instant::now();
                let reply = web.get(path, &[credential]).await?;
                let took = began.elapsed();
                if reply.status != StatusCode::OK {
                    return Err(format!("{name} answered {}", reply.status).into());
                }
                if round == 0 && !reply.text().contains(must_hold) {
                    return Err(format!("{name}: the body lacks {must_hold:?}").into());
                }
                if round >= args.warmup_requests {
                    out[n]
                        .1
                        .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
                }
            }
        }
        for (_, l) in &mut out {
            l.sort_unstable();
        }
        Ok(out)
    }

    /// The live stream's address the overview page gives its script (its
    /// feed position when read).
    pub(crate) async fn events_path(
        &self,
        web: &mut carewatch_benches::web::Connection,
    ) -> Result<String, BoxError> {
        let reply = web.get("/", &[self.credential(Auth::Session)]).await?;
        let text = reply.text();
        let start = text
            .find("data-events=\"")
            .ok_or("the overview has no live stream address")?
            + "data-events=\"".len();
        let end = text[start..].find('"').ok_or("unterminated attribute")? + start;
        Ok(text[start..end].replace("&amp;", "&"))
    }
}
