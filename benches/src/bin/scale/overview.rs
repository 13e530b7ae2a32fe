//! The overview load: what the fleet must show its reseller, one
//! `ListInstallations` call, and a run's requests of every kind, checked.

use super::*;
use carewatch_benches::SeededHealth;
use carewatch_core::health::Health;
use carewatch_core::store::PageCursor;
use carewatch_grpc::proto::{HealthTotals, ListInstallationsRequest, ListInstallationsResponse};

/// What the fleet must show its reseller.
#[derive(Debug)]
pub(crate) struct Expected {
    pub(crate) installations: u32,
    healthy: u32,
    /// A cursor whose next page is the last of the full list.
    last_page: String,
}

impl Expected {
    pub(crate) fn of(fleet: &Fleet, page_size: u32) -> Result<Self, BoxError> {
        let healthy: Vec<_> = fleet.installations_with(SeededHealth::Healthy).collect();
        let before_last_page = healthy
            .len()
            .checked_sub(page_size as usize + 1)
            .ok_or("too few installations for a last-page cursor")?;
        Ok(Self {
            installations: u32::try_from(fleet.installations.len())?,
            healthy: u32::try_from(healthy.len())?,
            last_page: PageCursor::Health {
                health: Health::Healthy,
                slc: healthy[before_last_page].slc.clone(),
            }
            .to_token(),
        })
    }

    pub(crate) fn not_healthy(&self) -> u32 {
        self.installations - self.healthy
    }

    pub(crate) fn check(&self, totals: Option<&HealthTotals>) -> Result<(), BoxError> {
        let t = totals.ok_or("no totals in the overview")?;
        let total = t.healthy + t.pending + t.attention + t.critical + t.offline;
        if total != self.installations || t.healthy != self.healthy {
            return Err(format!(
                "the overview shows {total} installations, {} Healthy; the fleet has {}, {} Healthy \
                 (was the data directory changed? try --fresh)",
                t.healthy, self.installations, self.healthy
            )
            .into());
        }
        Ok(())
    }
}

/// One `ListInstallations` call; its reply and latency in microseconds.
pub(crate) async fn list(
    client: &mut Dashboard,
    include_healthy: bool,
    page_size: u32,
    page_token: String,
) -> Result<(ListInstallationsResponse, u32), BoxError> {
    let request = ListInstallationsRequest {
        include_healthy,
        page_size,
        page_token,
        ..ListInstallationsRequest::default()
    };
    let began = Instant::now();
    let reply = client.list_installations(request).await?.into_inner();
    let took = u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX);
    Ok((reply, took))
}

/// The overview requests of one run, one at a time, checked against the fleet.
pub(crate) async fn overview_load(
    client: &mut Dashboard,
    expected: &Expected,
    args: &Args,
    check: bool,
    samples: &mut BTreeMap<Kind, Vec<u32>>,
) -> Result<(), BoxError> {
    let n = args.requests;
    for (kind, include_healthy) in [(Kind::First, false), (Kind::FirstAll, true)] {
        let latencies = samples.entry(kind).or_default();
        for _ in 0..n {
            let (page, took) = list(client, include_healthy, args.page_size, String::new()).await?;
            if page.installations.is_empty() {
                return Err("an empty first page".into());
            }
            latencies.push(took);
        }
    }

    for (kind, include_healthy) in [(Kind::Walk, false), (Kind::WalkAll, true)] {
        let latencies = samples.entry(kind).or_default();
        let mut token = String::new();
        let mut rows = 0usize;
        for _ in 0..n {
            let (page, took) = list(client, include_healthy, args.page_size, token).await?;
            latencies.push(took);
            rows += page.installations.len();
            token = page.next_page_token;
            if token.is_empty() {
                let listed = if include_healthy {
                    expected.installations
                } else {
                    expected.not_healthy()
                };
                if check && rows != listed as usize {
                    return Err(format!("paging listed {rows} installations, not {listed}").into());
                }
                rows = 0;
            }
        }
    }

    let latencies = samples.entry(Kind::LastPage).or_default();
    for _ in 0..n.div_ceil(5) {
        let (page, took) = list(client, true, args.page_size, expected.last_page.clone()).await?;
        if check
            && (page.installations.len() != args.page_size as usize
                || !page.next_page_token.is_empty())
        {
            return Err("the last page is not a full, final page".into());
        }
        latencies.push(took);
    }
    Ok(())
}
