//! Delivery of Carewatch notifications. No rules live here: `carewatch-core`
//! decides what to tell and keeps it in the store's outbox; this crate
//! sends what the outbox holds and records how each attempt ended.
//!
//! - [`Sender`] sends one outbox entry on an opened channel: a **webhook**
//!   gets the stored JSON document as is, signed (`Carewatch-Signature`,
//!   HMAC-SHA256 over the timestamp and the body) and carrying the entry's
//!   `Idempotency-Key`; **Slack** and **Teams** incoming webhooks get a
//!   message in their own format; **email** goes over SMTP (STARTTLS or
//!   implicit TLS) with a text and an HTML part, its `Message-ID` derived
//!   from the idempotency key so every retry is the same message.
//! - [`Dispatcher`] runs beside the server: it drives the notifier (feed →
//!   outbox; what a step queues is claimed for this node in the same
//!   commit and sent at once) and drains the outbox, claiming due entries
//!   under a lease, sending a few at once and recording each outcome, with
//!   exponential backoff and jitter between attempts. A node that dies
//!   mid-send loses its claim when the lease ends (or when it starts again:
//!   a dispatcher releases its node's previous claims as it starts) and the
//!   entry is sent again: delivery is at least once, and receivers
//!   deduplicate by the idempotency key.
//!
//! Webhooks and chat messages go through an HTTP proxy when one is set
//! ([`ProxyUrl`], `serve --notify-proxy`), and straight to the receiver
//! otherwise (the `HTTP(S)_PROXY` variables are not read: a proxy sees
//! every notification, so it is chosen explicitly).
//!
//! Webhooks and chat messages reach public addresses only unless the
//! operator allows private ones (`SenderOptions::allow_private_addresses`,
//! `serve --allow-private-webhooks`): a channel's URL is a tenant's choice,
//! and must not reach into the operator's network.
//!
//! Secrets (webhook signing secrets, chat webhook URLs, the SMTP password,
//! the proxy's password) are never logged: errors name the host only.

mod addresses;
mod dispatcher;
mod email;
mod http;
mod proxy;
mod render;
mod sender;

#[cfg(feature = "testing")]
pub mod testing;

pub use dispatcher::{Dispatcher, DispatcherOptions, panic_message};
pub use email::{SmtpSecurity, SmtpSettings, SmtpUrl, parse_mailbox};
pub use lettre::message::Mailbox;
pub use proxy::ProxyUrl;
pub use sender::{Attempt, Sender, SenderError, SenderOptions, USER_AGENT};
