//! Which addresses webhooks, Slack and Teams may reach. A reseller admin
//! chooses a channel's URL; unchecked, "send a test" and the channel's last
//! error would let a tenant probe the operator's own network (server-side
//! request forgery): the database, a cloud's metadata service on
//! 169.254.169.254, admin ports on loopback. By default only public
//! addresses are reached; `serve --allow-private-webhooks` lifts it, for a
//! deployment whose receivers are on its own network (and for tests).
//!
//! Checked where the connection is made: an IP in the URL before sending,
//! a name by the resolver, which drops every non-public address it finds
//! (so a name cannot point at loopback, nor change to it between a check
//! and the connection). Through a proxy, the proxy resolves and decides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What a refused destination's error says.
pub(crate) const REFUSED: &str = "a private, loopback or link-local address: not reached \
     (the operator can allow them: carewatch serve --allow-private-webhooks)";

/// Whether `ip` is on the public internet: not loopback, private (RFC
/// 1918, unique local), shared (CGNAT), link-local, unspecified,
/// multicast, broadcast, documentation or benchmarking space.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || embedded_v4(ip).is_some_and(|v4| !is_public_v4(v4))
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

/// The IPv4 address inside a NAT64 (64:ff9b::/96, its last 32 bits) or a
/// 6to4 (2002::/16, bits 16 to 48) address: judged as that address, so a
/// DNS64 network still reaches public receivers, and neither form reaches
/// a private one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let [a, b] = match s {
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => [hi, lo],
        [0x2002, hi, lo, ..] => [hi, lo],
        _ => return None,
    };
    let [a1, a2] = a.to_be_bytes();
    let [b1, b2] = b.to_be_bytes();
    Some(Ipv4Addr::new(a1, a2, b1, b2))
}

/// The system's resolver, keeping public addresses only.
#[derive(Debug, Default)]
pub(crate) struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // One answer whether the name is unknown or only private: a
            // reseller's "send a test" must not tell which internal names
            // the server's resolver knows.
            let not_public = || {
                format!(
                    "{host} is not reached: the name is unknown, or its addresses are \
                     private, loopback or link-local ones (reached only if the operator \
                     allows them: carewatch serve --allow-private-webhooks)"
                )
            };
            let Ok(found) = tokio::net::lookup_host((host.as_str(), 0)).await else {
                return Err(not_public().into());
            };
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(not_public().into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        let refused = [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "2002:a00:1::1",
            "2002:c0a8:101::1",
        ];
        for ip in refused {
            assert!(!is_public(ip.parse().expect(ip)), "{ip} is not public");
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "52.95.110.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for ip in public {
            assert!(is_public(ip.parse().expect(ip)), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn the_resolver_drops_what_is_not_public() {
        let refused = PublicOnly
            .resolve("localhost".parse().expect("a name"))
            .await
            .err()
            .expect("localhost is refused");
        assert!(refused.to_string().contains("private"), "{refused}");
        // Found by review: an unknown name said the resolver's own error,
        // so the answers told internal names that exist from others.
        let unknown = PublicOnly
            .resolve("nothing.invalid".parse().expect("a name"))
            .await
            .err()
            .expect("an unknown name is refused");
        assert_eq!(
            unknown.to_string().replace("nothing.invalid", "localhost"),
            refused.to_string(),
            "the same answer"
        );
    }
}
