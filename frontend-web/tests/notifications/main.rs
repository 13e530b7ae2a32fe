//! The notification pages: channels (the signing secret shown once, chat
//! URLs never shown, tests, deletion, failed notifications with their
//! error, the failing flag), maintenance windows, "in maintenance" on the
//! overview and the installation page, CSRF on every form, viewers' 403,
//! another reseller's channel or window the same 404 as a missing one,
//! `maintenance_until` in the JSON API.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod channels;
mod maintenance;
