//! `carewatch health`: asks a running server's gRPC health service whether
//! it serves. Exits 0 when it does, 1 otherwise (the container image's
//! health check; load balancers may call the same service directly).

use std::path::PathBuf;
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::CliResult;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Server URL.
    #[arg(
        long,
        env = "CAREWATCH_SERVER",
        default_value = "https://127.0.0.1:7443"
    )]
    server: String,
    /// Certificate to trust (the server's self-signed one, or its CA's).
    #[arg(
        long,
        env = "CAREWATCH_CA_CERT",
        default_value = "./carewatch-data/cert.pem"
    )]
    ca_cert: PathBuf,
    /// The name to check the server's certificate for, when it is not the
    /// URL's host (a certificate from a CA names the public name; the
    /// check connects to localhost).
    #[arg(long, env = "CAREWATCH_SERVER_NAME")]
    server_name: Option<String>,
    /// The service to ask about: empty for the server as a whole, or e.g.
    /// carewatch.v1.Ingest. Each says NOT_SERVING while the storage fails
    /// and once the node stops.
    #[arg(long, default_value = "")]
    service: String,
}

pub async fn run(args: HealthArgs) -> CliResult {
    let check = async {
        let ca = if args.server.starts_with("https://") {
            Some(
                std::fs::read_to_string(&args.ca_cert)
                    .map_err(|e| format!("{}: {e}", args.ca_cert.display()))?,
            )
        } else {
            None
        };
        let channel = carewatch_grpc::client::connect_as(
            &args.server,
            ca.as_deref(),
            args.server_name.as_deref(),
        )
        .await?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: args.service.clone(),
            })
            .await?
            .into_inner()
            .status;
        CliResult::Ok(status)
    };
    let status = tokio::time::timeout(TIMEOUT, check)
        .await
        .map_err(|_| format!("no answer from {} within {TIMEOUT:?}", args.server))??;
    let name = ServingStatus::try_from(status)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN");
    if status == ServingStatus::Serving as i32 {
        println!("{name}");
        Ok(())
    } else {
        Err(format!("{} is {name}", args.server).into())
    }
}
