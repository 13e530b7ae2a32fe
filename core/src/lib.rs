//! # carewatch-core
//!
//! The domain of Carewatch, a real-time customer-health dashboard for
//! video-surveillance installations: identifiers, the error catalogue, the
//! availability evaluator, sealing of recording-server messages,
//! authorisation, the storage traits and the [`Carewatch`] service facade.
//!
//! It knows no SQL, no gRPC and no Python: storage backends implement
//! [`store::Store`], front ends call [`Carewatch`].

pub mod audit;
pub mod auth;
pub mod availability;
pub mod catalogue;
pub mod condition;
pub mod error;
pub mod feed;
pub mod health;
pub mod ids;
pub mod installation;
pub mod labels;
pub mod liveness;
pub mod log_limit;
pub mod notification;
pub mod report;
pub mod seal;
mod service;
pub mod store;
pub mod team;
pub mod throttle;
pub mod time;

pub use catalogue::ConditionCode;
pub use error::{Error, Result, Unavailability};
pub use service::{
    Carewatch, Config, IncomingMessage, IngestAck, IssuedApiToken, IssuedInvitation, IssuedSession,
    SweepReport, WatchStream,
};
pub use service::{
    ChannelView, DEFAULT_ADMISSION_CACHE, DEFAULT_AUDIT_RETENTION, DEFAULT_NOTIFICATION_RETENTION,
    MIN_AUDIT_RETENTION, NotifierStep, OpenedChannel, ROLLING_DAYS, ResealReport,
    replace_operator_token,
};

#[cfg(feature = "testing")]
pub mod testing;
