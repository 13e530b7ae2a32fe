//! `carewatch decommission`: retire a recording server that was removed at
//! the site, over the Dashboard service with the reseller token (an admin
//! credential).

use carewatch_grpc::proto::{self, dashboard_client::DashboardClient};

use super::{CliResult, Connection};

#[derive(Debug, clap::Args)]
pub struct DecommissionArgs {
    #[command(flatten)]
    connection: Connection,
    /// The installation.
    slc: String,
    /// The recording server's id. (Not named `server`: that is the
    /// connection's `--server`, and clap refuses two arguments of one name.)
    #[arg(value_name = "SERVER")]
    recording_server: String,
}

pub async fn run(args: DecommissionArgs) -> CliResult {
    let channel = args.connection.channel().await?;
    let mut client = DashboardClient::with_interceptor(channel, args.connection.bearer()?);
    let changed = client
        .decommission_server(proto::DecommissionServerRequest {
            slc: args.slc.clone(),
            recording_server_id: args.recording_server.clone(),
        })
        .await?
        .into_inner()
        .changed;
    let slc = args.slc.trim().to_uppercase();
    if changed {
        println!(
            "recording server {} of {slc} decommissioned: it no longer counts for health; a message from it brings it back",
            args.recording_server
        );
    } else {
        println!(
            "recording server {} of {slc} was decommissioned already",
            args.recording_server
        );
    }
    Ok(())
}
