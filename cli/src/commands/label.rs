//! `carewatch label`: what a reseller calls one of its installations
//! (customer, site, notes, tags), over the Dashboard service with the
//! reseller token (an admin credential).

use carewatch_grpc::proto::{self, dashboard_client::DashboardClient};

use super::{CliResult, Connection};

#[derive(Debug, clap::Args)]
pub struct LabelArgs {
    #[command(flatten)]
    connection: Connection,
    /// The installation.
    slc: String,
    /// The customer's name.
    #[arg(long, default_value = "")]
    customer: String,
    /// The site's name.
    #[arg(long, default_value = "")]
    site: String,
    /// Free-text notes (several lines: quote them).
    #[arg(long, default_value = "")]
    notes: String,
    /// A tag (repeat the option, or separate with commas).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
}

/// Sets every label at once: what is not given is cleared, so the command
/// line is the whole truth (`carewatch label SLC` alone removes them).
pub async fn run(args: LabelArgs) -> CliResult {
    let channel = args.connection.channel().await?;
    let mut client = DashboardClient::with_interceptor(channel, args.connection.bearer()?);
    let stored = client
        .set_labels(proto::SetLabelsRequest {
            slc: args.slc.clone(),
            labels: Some(proto::Labels {
                customer: args.customer,
                site: args.site,
                notes: args.notes,
                tags: args.tags,
            }),
        })
        .await?
        .into_inner()
        .labels
        .unwrap_or_default();
    let shown = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    println!("{}", args.slc.trim().to_uppercase());
    println!("  customer: {}", shown(&stored.customer));
    println!("  site:     {}", shown(&stored.site));
    println!("  tags:     {}", shown(&stored.tags.join(", ")));
    if !stored.notes.is_empty() {
        println!("  notes:");
        for line in stored.notes.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}
