//! The three Carewatch services.

mod admin;
mod dashboard;
mod ingest;

pub use admin::AdminService;
pub use dashboard::DashboardService;
pub use ingest::IngestService;
