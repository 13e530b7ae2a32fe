//! Every TCP connection to PostgreSQL has Nagle's algorithm off
//! (TCP_NODELAY): sqlx-core 0.9.0 lost it, and small statements then waited
//! for the server's delayed ACK, about 40 ms (vendor/sqlx-core/CAREWATCH-PATCH.md).
//! Checked on this process's own sockets after a store opened and queried.
#![allow(unsafe_code)] // getpeername/getsockopt on this process's own descriptors, read-only

mod common;

use std::os::fd::RawFd;

use carewatch_core::ids::ResellerId;
use carewatch_core::store::Store;

/// The remote port of a TCP socket, if `fd` is one.
fn peer_port(fd: RawFd) -> Option<u16> {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` and `len` are valid for writes of the sizes given.
    let ok = unsafe { libc::getpeername(fd, (&raw mut addr).cast(), &raw mut len) } == 0;
    if !ok {
        return None;
    }
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let v4: libc::sockaddr_in = unsafe { std::ptr::read((&raw const addr).cast()) };
            Some(u16::from_be(v4.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let v6: libc::sockaddr_in6 = unsafe { std::ptr::read((&raw const addr).cast()) };
            Some(u16::from_be(v6.sin6_port))
        }
        _ => None,
    }
}

fn nodelay(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&raw mut value).cast(),
            &raw mut len,
        )
    } == 0;
    ok && value != 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_postgresql_over_tcp_have_nagle_off() {
    let options: sqlx_postgres::PgConnectOptions = common::url().parse().expect("a PostgreSQL URL");
    let port = options.get_port();
    let schema = common::Schema::create().await;
    let store = schema.open_store(&schema.next_application_name()).await;
    // A read, so the pool has a connection open.
    store
        .reseller_token(&ResellerId::new("nobody").expect("id"))
        .await
        .expect("reads");
    let mut to_postgresql = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("lists descriptors") {
        let Some(fd) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        else {
            continue;
        };
        if peer_port(fd) == Some(port) {
            to_postgresql.push((fd, nodelay(fd)));
        }
    }
    assert!(
        !to_postgresql.is_empty(),
        "no TCP connection to port {port}: point CAREWATCH_TEST_DATABASE_URL at a TCP address"
    );
    assert!(
        to_postgresql.iter().all(|(_, on)| *on),
        "TCP_NODELAY off on some connections (descriptor, on): {to_postgresql:?}"
    );
    store.close().await;
}
