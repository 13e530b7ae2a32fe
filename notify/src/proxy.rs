//! The HTTP proxy webhooks and chat messages go through, when the network
//! Carewatch runs in only reaches the Internet through one
//! (`serve --notify-proxy`). Email goes to its SMTP server directly.

/// A proxy's URL: `http://[user:password@]host[:port]` or `https://…`.
/// Its password never appears in `Debug`, in [`ProxyUrl::describe`] or in
/// delivery errors.
#[derive(Clone)]
pub struct ProxyUrl(reqwest::Url);

impl ProxyUrl {
    /// The URL's form, without the URL itself (it may hold a password).
    pub const FORM: &str =
        "http://[user:password@]host[:port] or https://[user:password@]host[:port]";

    /// The proxy at `text`, checked: `http` or `https`, a host, nothing
    /// after it (no path, query or fragment).
    pub fn parse(text: &str) -> Result<Self, String> {
        let refused = |why: &str| format!("the proxy URL {why}; expected {}", Self::FORM);
        let url = reqwest::Url::parse(text.trim()).map_err(|_| refused("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refused("must start with http:// or https://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refused("has no host"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(refused("must not have a path, query or fragment"));
        }
        Ok(Self(url))
    }

    /// `scheme://host:port`, without the user and password: for the log.
    pub fn describe(&self) -> String {
        let host = self.0.host_str().unwrap_or("?");
        match self.0.port_or_known_default() {
            Some(port) => format!("{}://{host}:{port}", self.0.scheme()),
            None => format!("{}://{host}", self.0.scheme()),
        }
    }

    /// The password, to keep it out of error texts.
    pub(crate) fn password(&self) -> Option<&str> {
        self.0.password().filter(|p| !p.is_empty())
    }

    /// For reqwest, which sends the user and password as
    /// `Proxy-Authorization: Basic`.
    pub(crate) fn to_reqwest(&self) -> Result<reqwest::Proxy, String> {
        reqwest::Proxy::all(self.0.clone())
            .map_err(|_| format!("the proxy {} cannot be used", self.describe()))
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyUrl({})", self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_url_is_checked_and_never_shows_its_password() {
        let proxy = ProxyUrl::parse("http://ops:s3cret@proxy.example:3128").expect("valid");
        assert_eq!(proxy.describe(), "http://proxy.example:3128");
        assert_eq!(format!("{proxy:?}"), "ProxyUrl(http://proxy.example:3128)");
        assert_eq!(proxy.password(), Some("s3cret"));
        assert_eq!(
            ProxyUrl::parse("https://proxy.example")
                .expect("valid")
                .describe(),
            "https://proxy.example:443"
        );
        for bad in [
            "proxy.example:3128",
            "socks5://proxy.example:1080",
            "http://",
            "http://proxy.example:3128/path",
            "http://proxy.example:3128/?q=1",
            "",
        ] {
            let error = ProxyUrl::parse(bad).expect_err(bad);
            assert!(error.contains("expected http://"), "{bad}: {error}");
        }
        let error = ProxyUrl::parse("ftp://ops:s3cret@proxy.example").expect_err("scheme");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
