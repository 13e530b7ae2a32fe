//! The web front end in process: a Carewatch over SQLite in a temporary
//! directory with a manual clock, its router, and a small browser that
//! keeps a session cookie. Requests go through `tower::ServiceExt::oneshot`
//! with the peer address the server would record.

#![allow(dead_code)] // each test file uses a part

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use carewatch_core::ids::ResellerId;
use carewatch_core::store::Store;
use carewatch_core::team::{Login, Password, Role};
use carewatch_core::testing::{Fixture, Site, TestDatabase};
use carewatch_storage_sqlite::SqliteStore;
use carewatch_web::{WebOptions, csrf_token};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use tempfile::TempDir;
use tonic::transport::server::TcpConnectInfo;
use tower::ServiceExt;

/// A password every test user has.
pub const PASSWORD: &str = "correct horse battery staple";

/// A SQLite database in a temporary directory.
pub struct SqliteFile {
    dir: TempDir,
}

#[async_trait::async_trait]
impl TestDatabase for SqliteFile {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            SqliteStore::open(self.dir.path().join("carewatch.db"))
                .await
                .expect("opens SQLite store"),
        )
    }
}

/// A running web front end.
pub struct Web {
    pub fixture: Fixture,
    pub router: Router,
    _db: SqliteFile,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The value a `Set-Cookie` header gives cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let (pair, _) = v.split_once(';').unwrap_or((v, ""));
                let (key, value) = pair.split_once('=')?;
                (key == name).then(|| value.to_owned())
            })
    }

    /// The whole `Set-Cookie` header for cookie `name`.
    pub fn set_cookie_header(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// Whether this sends a browser to the login page.
    pub fn is_login_redirect(&self) -> bool {
        self.status == StatusCode::SEE_OTHER && self.location() == Some("/login")
    }

    /// The JSON body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A signed-in browser: its session cookie and its forms' CSRF token.
#[derive(Debug, Clone)]
pub struct Browser {
    pub session: String,
    pub csrf: String,
}

impl Browser {
    /// The `Cookie` header it sends.
    pub fn cookie(&self) -> String {
        format!("carewatch_session={}", self.session)
    }
}

/// A double-submit value for the signed-out forms, of the shape the server makes.
pub const FORM_TOKEN: &str = "cwf.0000000000000000000000000000000000000000000000000000000000000001";

impl Web {
    /// A fresh service with an empty database.
    pub async fn new() -> Self {
        let db = SqliteFile {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        let fixture = Fixture::open(&db).await;
        let router = carewatch_web::router(fixture.carewatch.clone(), WebOptions::default());
        Self {
            fixture,
            router,
            _db: db,
        }
    }

    /// Sends a request from `peer` and reads the whole response.
    pub async fn send_from(&self, peer: IpAddr, mut request: Request<Body>) -> Page {
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7443)),
            remote_addr: Some(SocketAddr::new(peer, 50_000)),
        });
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router never fails");
        let (parts, body) = response.into_parts();
        let bytes = tokio::time::timeout(Duration::from_secs(30), body.collect())
            .await
            .expect("the body ends")
            .expect("the body reads")
            .to_bytes();
        Page {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Sends a request from 192.0.2.1.
    pub async fn send(&self, request: Request<Body>) -> Page {
        self.send_from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), request)
            .await
    }

    /// `GET path`, with a `Cookie` header if given.
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        self.send(get(path, cookie)).await
    }

    /// `GET path` as `browser`.
    pub async fn get_as(&self, browser: &Browser, path: &str) -> Page {
        self.get(path, Some(&browser.cookie())).await
    }

    /// `POST path` with a form, as `browser`, its CSRF token added.
    pub async fn post_as(&self, browser: &Browser, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("csrf", browser.csrf.as_str())];
        all.extend_from_slice(fields);
        self.send(post(path, Some(&browser.cookie()), &all)).await
    }

    /// An API request with a bearer token.
    pub async fn api(&self, path: &str, token: Option<&str>) -> Page {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    /// Creates a user of `reseller` (the operator invites, the user accepts).
    pub async fn user(&self, reseller: &str, login: &str, role: Role) -> Login {
        let reseller = self.fixture.reseller(reseller).await;
        let login = Login::new(login).expect("valid login");
        let invitation = self
            .fixture
            .carewatch
            .invite_user(&reseller, &login, login.as_str(), role, None)
            .await
            .expect("invites");
        self.fixture
            .carewatch
            .accept_invitation(
                &invitation.secret.token,
                Password::new(PASSWORD).expect("valid"),
                None,
            )
            .await
            .expect("accepts");
        login
    }

    /// Signs in through the login form.
    pub async fn sign_in(&self, login: &str, password: &str) -> Page {
        self.send(login_form(login, password)).await
    }

    /// A new user of `reseller`, signed in through the login form.
    pub async fn browser(&self, reseller: &str, login: &str, role: Role) -> Browser {
        self.user(reseller, login, role).await;
        let page = self.sign_in(login, PASSWORD).await;
        assert!(
            page.status == StatusCode::SEE_OTHER && page.location() == Some("/"),
            "signs in: {page:?}"
        );
        let session = page
            .set_cookie("carewatch_session")
            .expect("a session cookie");
        Browser {
            csrf: csrf_token(&session),
            session,
        }
    }

    /// A registered, consenting, subscribed installation of `reseller`.
    pub async fn site(&self, reseller: &str, slc: &str) -> Site {
        self.fixture.site(reseller, slc).await
    }

    /// The reseller's token (for the API), made anew.
    pub async fn reseller_token(&self, reseller: &str) -> String {
        let id = ResellerId::new(reseller).expect("valid");
        self.fixture
            .carewatch
            .rotate_reseller_token(&id)
            .await
            .expect("rotates")
            .token
            .to_string()
    }
}

/// A `GET` request.
pub fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).expect("request")
}

/// A form `POST`.
pub fn post(path: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Request<Body> {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body)).expect("request")
}

/// The login form, with a matching double-submit cookie.
pub fn login_form(login: &str, password: &str) -> Request<Body> {
    post(
        "/login",
        Some(&format!("carewatch_form={FORM_TOKEN}")),
        &[
            ("csrf", FORM_TOKEN),
            ("login", login),
            ("password", password),
        ],
    )
}

/// Form encoding.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
