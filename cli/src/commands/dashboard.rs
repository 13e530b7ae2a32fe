//! `carewatch dashboard`: a reseller's overview in the terminal.

use std::io::IsTerminal;

use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto::{self, dashboard_client::DashboardClient};
use futures::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::{CliResult, Connection};

#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    connection: Connection,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep running and reprint on every change.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    listing: Listing,
}

/// Which installations to list, and in which order.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Listing {
    /// List Healthy installations too.
    #[arg(long)]
    pub all: bool,
    /// Only installations whose SLC, customer, site or a tag contains this
    /// text (any case).
    #[arg(long, default_value = "")]
    pub search: String,
    /// Only installations of this health.
    #[arg(long, value_enum)]
    pub health: Option<HealthFilter>,
    /// Sort by health (worst first), customer (then site) or site (then
    /// customer); names A to Z ignoring case and accents, unnamed last.
    #[arg(long, value_enum, default_value_t = Sort::Health)]
    pub sort: Sort,
}

/// `--sort`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Sort {
    #[default]
    Health,
    Customer,
    Site,
}

/// `--health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HealthFilter {
    Healthy,
    Pending,
    Attention,
    Critical,
    Offline,
}

impl Listing {
    /// Every installation, worst first.
    pub fn everything() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    fn request(&self, page_token: String) -> proto::ListInstallationsRequest {
        proto::ListInstallationsRequest {
            include_healthy: self.all,
            page_size: 500,
            page_token,
            search: self.search.clone(),
            order: match self.sort {
                Sort::Health => proto::InstallationOrder::WorstFirst,
                Sort::Customer => proto::InstallationOrder::Customer,
                Sort::Site => proto::InstallationOrder::Site,
            } as i32,
            health: self.health.map_or(proto::Health::Unspecified, |h| match h {
                HealthFilter::Healthy => proto::Health::Healthy,
                HealthFilter::Pending => proto::Health::Pending,
                HealthFilter::Attention => proto::Health::Attention,
                HealthFilter::Critical => proto::Health::Critical,
                HealthFilter::Offline => proto::Health::Offline,
            }) as i32,
        }
    }
}

fn health_name(h: i32) -> &'static str {
    match proto::Health::try_from(h).unwrap_or(proto::Health::Unspecified) {
        proto::Health::Healthy => "Healthy",
        proto::Health::Pending => "Pending",
        proto::Health::Attention => "Attention",
        proto::Health::Critical => "Critical",
        proto::Health::Offline => "Offline",
        proto::Health::Unspecified => "?",
    }
}

fn colour(h: i32) -> &'static str {
    match proto::Health::try_from(h).unwrap_or(proto::Health::Unspecified) {
        proto::Health::Healthy => "\x1b[32m",
        proto::Health::Attention | proto::Health::Pending => "\x1b[33m",
        proto::Health::Critical => "\x1b[31m",
        proto::Health::Offline => "\x1b[1;35m",
        proto::Health::Unspecified => "",
    }
}

fn json_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => "\\\"".chars().collect::<Vec<_>>(),
            '\\' => "\\\\".chars().collect(),
            c if c.is_control() => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

pub type Client = DashboardClient<InterceptedService<Channel, Bearer>>;

/// The customer and site of a row, as one short cell.
fn customer_cell(r: &proto::InstallationRow) -> String {
    let labels = r.labels.clone().unwrap_or_default();
    let title = match (labels.customer.is_empty(), labels.site.is_empty()) {
        (false, false) => format!("{} / {}", labels.customer, labels.site),
        (false, true) => labels.customer,
        (true, false) => labels.site,
        (true, true) => "-".to_owned(),
    };
    if title.chars().count() > 28 {
        format!("{}…", title.chars().take(27).collect::<String>())
    } else {
        title
    }
}

pub async fn print_overview(client: &mut Client, listing: &Listing, json: bool) -> CliResult {
    let mut rows = Vec::new();
    let mut page_token = String::new();
    let totals = loop {
        let request = listing.request(page_token);
        let page = client.list_installations(request).await?.into_inner();
        rows.extend(page.installations);
        if page.next_page_token.is_empty() {
            break page.totals.unwrap_or_default();
        }
        page_token = page.next_page_token;
    };
    if json {
        for r in &rows {
            let s = r.summary.clone().unwrap_or_default();
            let labels = r.labels.clone().unwrap_or_default();
            let tags: Vec<String> = labels
                .tags
                .iter()
                .map(|t| format!("\"{}\"", json_escape(t)))
                .collect();
            println!(
                "{{\"slc\":\"{}\",\"refused\":{},\"customer\":\"{}\",\"site\":\"{}\",\"tags\":[{}],\"product\":\"{}\",\"health\":\"{}\",\"worst\":\"{}\",\"servers\":{},\"unavailable\":{},\"late\":{},\"conditions\":{},\"last_seen\":{}}}",
                json_escape(&r.slc),
                if r.refused.is_empty() {
                    "null".to_owned()
                } else {
                    format!("\"{}\"", json_escape(&r.refused))
                },
                json_escape(&labels.customer),
                json_escape(&labels.site),
                tags.join(","),
                json_escape(&r.product),
                health_name(s.health).to_lowercase(),
                json_escape(&s.worst_condition),
                s.servers,
                s.unavailable,
                s.late,
                s.active_conditions,
                r.last_seen_at
                    .as_ref()
                    .map_or("null".to_owned(), |t| t.seconds.to_string()),
            );
        }
        return Ok(());
    }
    let tty = std::io::stdout().is_terminal();
    println!(
        "Offline {}  Critical {}  Attention {}  Pending {}  Healthy {}",
        totals.offline, totals.critical, totals.attention, totals.pending, totals.healthy
    );
    println!(
        "{:<20} {:<28} {:<10} {:<26} {:>7} {:>6} {:>5} {:>10}",
        "SLC", "CUSTOMER", "HEALTH", "WORST CONDITION", "SERVERS", "DOWN", "LATE", "CONDITIONS"
    );
    for r in &rows {
        let s = r.summary.clone().unwrap_or_default();
        let (on, off) = if tty {
            (colour(s.health), "\x1b[0m")
        } else {
            ("", "")
        };
        println!(
            "{:<20} {:<28} {on}{:<10}{off} {:<26} {:>7} {:>6} {:>5} {:>10}",
            r.slc,
            customer_cell(r),
            match r.refused.as_str() {
                "consent_withdrawn" => "No consent",
                "subscription_expired" => "Expired",
                _ => health_name(s.health),
            },
            if s.worst_condition.is_empty() {
                "-"
            } else {
                &s.worst_condition
            },
            s.servers,
            s.unavailable,
            s.late,
            s.active_conditions
        );
    }
    if rows.is_empty() {
        if listing.all || listing.health.is_some() || !listing.search.trim().is_empty() {
            println!("(no installation matches)");
        } else {
            println!("(nothing needs attention; --all lists every installation)");
        }
    }
    Ok(())
}

pub async fn run(args: DashboardArgs) -> CliResult {
    let channel = args.connection.channel().await?;
    let mut client = DashboardClient::with_interceptor(channel, args.connection.bearer()?);
    // Watching starts before the first listing: a change made between the
    // two was missed until the next one.
    let mut first = if args.watch {
        let request = proto::WatchRequest {
            slc: String::new(),
            after_event_id: None,
        };
        Some(client.watch(request).await?.into_inner())
    } else {
        None
    };
    print_overview(&mut client, &args.listing, args.json).await?;
    if !args.watch {
        return Ok(());
    }
    // Follows the feed; after a disconnection (a restart, another node),
    // resumes after the last event seen, so no change is missed.
    let mut last = None;
    loop {
        let request = proto::WatchRequest {
            slc: String::new(),
            after_event_id: last,
        };
        let opened = match first.take() {
            Some(changes) => Ok(changes),
            None => client.watch(request).await.map(tonic::Response::into_inner),
        };
        let mut changes = match opened {
            Ok(changes) => changes,
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            Err(status) => return Err(status.into()),
        };
        while let Some(event) = changes.next().await {
            let event = match event {
                Ok(event) => event,
                Err(status) if status.code() == tonic::Code::Unavailable => break,
                Err(status) => return Err(status.into()),
            };
            last = Some(event.event_id);
            use proto::installation_updated::Change as Updated;
            let relabelled = matches!(
                &event.event,
                Some(proto::watch_event::Event::Updated(u)) if matches!(u.change, Some(Updated::Labels(_)))
            );
            if relabelled || matches!(event.event, Some(proto::watch_event::Event::Changed(_))) {
                if !args.json {
                    println!();
                }
                print_overview(&mut client, &args.listing, args.json).await?;
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
