//! The sender against real receivers: an HTTP server over plain TCP and
//! over TLS (a self-signed certificate the sender is told to trust), and an
//! SMTP server with STARTTLS, implicit TLS, AUTH and refusals. No mock
//! transport anywhere.

mod email;
mod fixtures;
mod webhooks;
