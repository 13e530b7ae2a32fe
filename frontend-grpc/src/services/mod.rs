//! The Carewatch services.

mod admin;
mod dashboard;
mod ingest;
mod notifications;

pub use crate::auth::API_TOKEN_LOGIN;
pub use admin::AdminService;
pub use dashboard::{DashboardService, TOKEN_RECHECK};
pub use ingest::IngestService;
pub use notifications::NotificationsService;
