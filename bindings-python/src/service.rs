//! `carewatch.Carewatch`: the service facade over SQLite or PostgreSQL.

use std::path::PathBuf;
use std::sync::Arc;

use carewatch_cli::store::{self, IfMissing, OpenOptions, StoreTarget, open_store};
use carewatch_core::availability::{AvailabilityPolicy, DEFAULT_INTERVAL};
use carewatch_core::feed::EventId;
use carewatch_core::health::Health;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::installation::Product;
use carewatch_core::labels::Labels;
use carewatch_core::report::{Period, UptimeReport};
use carewatch_core::seal::key_file::KeySource;
use carewatch_core::seal::{KeyId, MasterKey};
use carewatch_core::store::{OverviewOrder, OverviewQuery, PageCursor};
use carewatch_core::team::{Login, Role, User};
use carewatch_core::time::SystemClock;
use carewatch_core::{Carewatch as Service, Config};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::convert::{self, datetime, duration, installation, timedelta, timestamp};
use crate::errors::OrRaise;
use crate::records;
use crate::runtime::{OpenedIn, block_on};
use crate::watch::Watch;

/// Carewatch over a database: operator actions, ingest, the resellers' views.
///
/// Open it with ``Carewatch.open("carewatch.db")`` (SQLite; the master key is
/// kept in ``master.key`` beside the database, created on first use) or
/// ``Carewatch.open("postgres://…", master_key=…)``. Every method blocks
/// until done and releases the GIL meanwhile; one object may be shared by
/// threads.
#[pyclass(frozen, module = "carewatch", name = "Carewatch")]
#[derive(Debug)]
pub struct Carewatch {
    service: Service,
    description: String,
    /// A forked child cannot use it (its store's threads stayed behind).
    opened_in: OpenedIn,
}

const DEFAULT_NODE_ID: &str = "python";

impl Carewatch {
    /// [`block_on`], in the process this object was opened in only.
    fn block_on<T, F>(&self, py: Python<'_>, future: F) -> PyResult<T>
    where
        T: Send,
        F: std::future::Future<Output = carewatch_core::Result<T>> + Send,
    {
        self.opened_in.check()?;
        block_on(py, future)
    }

    /// A reseller id as is, or the reseller a `cwr.` token authenticates.
    fn reseller(&self, py: Python<'_>, who: &str) -> PyResult<ResellerId> {
        // Reseller ids have no dots; tokens always do.
        if who.contains('.') {
            self.block_on(py, self.service.authenticate_reseller(who, None))
        } else {
            ResellerId::new(who).or_raise(py)
        }
    }
}

#[pymethods]
impl Carewatch {
    /// Opens (and migrates) the database at ``target``: a SQLite file path,
    /// or a ``postgres://`` URL. ``previous_master_keys`` (hex) still open
    /// what they sealed while a rotation moves it to ``master_key``
    /// (``reseal_secrets``).
    #[staticmethod]
    #[pyo3(signature = (
        target, *, master_key=None, schema=None, heartbeat_interval=None,
        unavailable_after=3, jitter_tolerance=None, node_id=None,
        previous_master_keys=None,
    ))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn open(
        py: Python<'_>,
        target: PathBuf,
        master_key: Option<String>,
        schema: Option<String>,
        heartbeat_interval: Option<Bound<'_, PyAny>>,
        unavailable_after: i128,
        jitter_tolerance: Option<Bound<'_, PyAny>>,
        node_id: Option<String>,
        previous_master_keys: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let unavailable_after: u32 = convert::whole(py, unavailable_after, "unavailable_after")?;
        let previous = previous_master_keys
            .unwrap_or_default()
            .iter()
            .map(|hex| MasterKey::from_hex(hex.trim()))
            .collect::<Result<Vec<_>, _>>()
            .or_raise(py)?;
        let interval = heartbeat_interval
            .map(|v| duration(&v, "heartbeat_interval"))
            .transpose()?
            .unwrap_or(DEFAULT_INTERVAL);
        let jitter = jitter_tolerance
            .map(|v| duration(&v, "jitter_tolerance"))
            .transpose()?
            .unwrap_or(AvailabilityPolicy::default().jitter_tolerance());
        let node_id = node_id.unwrap_or_else(|| DEFAULT_NODE_ID.to_owned());
        let (service, description) = block_on(py, async move {
            let policy = AvailabilityPolicy::new(unavailable_after, jitter)?;
            let target = StoreTarget::parse(&target)?;
            let options = OpenOptions {
                schema: schema.as_deref(),
                application_name: Some("carewatch-python"),
                existing: false,
            };
            // During a rotation the current key must already exist (a new
            // random one would receive every re-sealed secret), so it is
            // looked for first: a refusal leaves no empty database behind.
            // Otherwise the store comes first: a failed open leaves no
            // stray key file.
            let rotation_key = if previous.is_empty() {
                None
            } else {
                Some(store::master_key(
                    &target,
                    master_key.as_deref(),
                    None,
                    IfMissing::Refuse,
                )?)
            };
            let store = open_store(&target, &options).await?;
            let (key, source) = match rotation_key {
                Some(found) => found,
                None => store::master_key(&target, master_key.as_deref(), None, IfMissing::Create)?,
            };
            let description = target.describe();
            let config = Config::new(key)
                .with_previous_master_keys(previous)
                .with_heartbeat_interval(interval)?
                .with_policy(policy)
                .with_node_id(node_id);
            let created = match (source, &target) {
                (KeySource::Created, StoreTarget::Sqlite(path)) => {
                    Some(store::key_file_beside(path))
                }
                _ => None,
            };
            store::check_master_keys(&config, store.as_ref(), created.as_deref()).await?;
            let service = Service::open(store, Arc::new(SystemClock), config).await?;
            Ok((service, description))
        })?;
        Ok(Self {
            service,
            description,
            opened_in: OpenedIn::here(),
        })
    }

    fn __repr__(&self) -> String {
        format!("<Carewatch on {}>", self.description)
    }

    /// The heartbeat interval recording servers are told to keep.
    #[getter]
    fn heartbeat_interval<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        timedelta(py, self.service.config().heartbeat_interval())
    }

    /// The service clock's current time.
    fn now<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        datetime(py, self.service.now())
    }

    // --- operator ---

    /// Creates a reseller; returns its token, shown this once.
    fn create_reseller(&self, py: Python<'_>, reseller: &str, name: &str) -> PyResult<String> {
        let id = ResellerId::new(reseller).or_raise(py)?;
        let issued = self.block_on(py, self.service.create_reseller(&id, name))?;
        Ok(issued.token.to_string())
    }

    /// Replaces a reseller's token; the old one stops working at once.
    fn rotate_reseller_token(&self, py: Python<'_>, reseller: &str) -> PyResult<String> {
        let id = ResellerId::new(reseller).or_raise(py)?;
        let issued = self.block_on(py, self.service.rotate_reseller_token(&id))?;
        Ok(issued.token.to_string())
    }

    /// Issues (or replaces) the token of operator ``name``.
    fn issue_operator_token(&self, py: Python<'_>, name: &str) -> PyResult<String> {
        let id = ResellerId::new(name).or_raise(py)?;
        let issued = self.block_on(py, self.service.issue_operator_token(&id))?;
        Ok(issued.token.to_string())
    }

    /// Checks a reseller token; returns the reseller's id.
    fn authenticate_reseller(&self, py: Python<'_>, token: &str) -> PyResult<String> {
        Ok(self
            .block_on(py, self.service.authenticate_reseller(token, None))?
            .to_string())
    }

    /// All resellers.
    fn resellers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let resellers = self.block_on(py, self.service.resellers())?;
        let items = resellers
            .iter()
            .map(|r| records::reseller(py, r))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Master-key rotation: re-seals under the current master key every
    /// installation key and channel that one of ``previous_master_keys``
    /// sealed (see the README, "Running in production").
    /// With ``expected_current_key`` (a fingerprint, as in
    /// ``ResealReport.current_key``), refuses unless that is the current key.
    #[pyo3(signature = (expected_current_key = None))]
    fn reseal_secrets<'py>(
        &self,
        py: Python<'py>,
        expected_current_key: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let report = self.block_on(py, self.service.reseal_secrets(expected_current_key))?;
        records::reseal_report(py, &report)
    }

    /// The audit log, newest first: everyone's actions, or only ``team``'s
    /// (a reseller's users'), older than entry ``before``.
    #[pyo3(signature = (team = None, before = None, limit = 100))]
    fn audit_log<'py>(
        &self,
        py: Python<'py>,
        team: Option<&str>,
        before: Option<i128>,
        limit: i128,
    ) -> PyResult<Bound<'py, PyList>> {
        let before: Option<u64> = before
            .map(|b| convert::whole(py, b, "before"))
            .transpose()?;
        let limit: u32 = convert::whole(py, limit, "limit")?;
        let team = team.map(ResellerId::new).transpose().or_raise(py)?;
        let entries = self.block_on(py, self.service.audit_log(team.as_ref(), before, limit))?;
        let items = entries
            .iter()
            .map(|e| records::audit_entry(py, e))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Records that ``reseller`` registered ``slc``. It starts without consent
    /// and without subscription.
    fn register_installation<'py>(
        &self,
        py: Python<'py>,
        slc: &str,
        reseller: &str,
        product: &str,
        version: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let slc = Slc::new(slc).or_raise(py)?;
        let reseller = ResellerId::new(reseller).or_raise(py)?;
        let product = Product::new(product, version).or_raise(py)?;
        let registered = self.block_on(
            py,
            self.service.register_installation(&slc, &reseller, product),
        )?;
        installation(py, &registered)
    }

    /// ``slc``'s whole history, newest first (at most ``limit``, up to
    /// 1,000): the operator's view, including what a transfer hid from its
    /// reseller.
    #[pyo3(signature = (slc, limit = 100))]
    fn full_history<'py>(
        &self,
        py: Python<'py>,
        slc: &str,
        limit: i128,
    ) -> PyResult<Bound<'py, PyList>> {
        let limit: u32 = convert::whole(py, limit, "limit")?;
        let slc = Slc::new(slc).or_raise(py)?;
        let events = self.block_on(py, self.service.full_history(&slc, limit))?;
        let items = events
            .iter()
            .map(|e| records::history_event(py, e))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Moves ``slc`` to reseller ``to`` (the registration centre moved it):
    /// the old reseller finds it nowhere from now on; unless
    /// ``share_history``, the new one sees only what happens from now on.
    #[pyo3(signature = (slc, to, share_history = false))]
    fn transfer_installation<'py>(
        &self,
        py: Python<'py>,
        slc: &str,
        to: &str,
        share_history: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let slc = Slc::new(slc).or_raise(py)?;
        let to = ResellerId::new(to).or_raise(py)?;
        let moved = self.block_on(
            py,
            self.service.transfer_installation(&slc, &to, share_history),
        )?;
        installation(py, &moved)
    }

    /// Sets when Care Plus ends (``None``: no subscription).
    fn set_subscription<'py>(
        &self,
        py: Python<'py>,
        slc: &str,
        expires_at: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let slc = Slc::new(slc).or_raise(py)?;
        let expires_at = expires_at
            .map(|at| timestamp(&at, "expires_at"))
            .transpose()?;
        let updated = self.block_on(py, self.service.set_subscription(&slc, expires_at))?;
        installation(py, &updated)
    }

    /// Records the owner's consent (or its withdrawal).
    fn set_consent<'py>(
        &self,
        py: Python<'py>,
        slc: &str,
        accepted: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let slc = Slc::new(slc).or_raise(py)?;
        let updated = self.block_on(py, self.service.set_consent(&slc, accepted))?;
        installation(py, &updated)
    }

    /// Changes what the installation runs.
    fn set_product<'py>(
        &self,
        py: Python<'py>,
        slc: &str,
        product: &str,
        version: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let slc = Slc::new(slc).or_raise(py)?;
        let product = Product::new(product, version).or_raise(py)?;
        let updated = self.block_on(py, self.service.set_product(&slc, product))?;
        installation(py, &updated)
    }

    /// Issues a new key for an installation and returns its text
    /// (``cwk1:…``), the only time it is seen: provision it on the
    /// recording servers. Earlier keys stay valid until retired.
    fn issue_installation_key(&self, py: Python<'_>, slc: &str) -> PyResult<String> {
        let slc = Slc::new(slc).or_raise(py)?;
        let key = self.block_on(py, self.service.issue_installation_key(&slc))?;
        Ok(key.to_text().to_string())
    }

    /// Retires a key: messages sealed with it are refused from now on.
    fn retire_installation_key(&self, py: Python<'_>, slc: &str, key_id: i128) -> PyResult<()> {
        let key_id: u32 = convert::whole(py, key_id, "key_id")?;
        let slc = Slc::new(slc).or_raise(py)?;
        self.block_on(
            py,
            self.service
                .retire_installation_key(&slc, KeyId::new(key_id)),
        )
    }

    // --- recording servers ---

    /// Judges and applies one sealed message (see ``seal_heartbeat`` and
    /// ``seal_status``). A refused message raises and changes nothing; an
    /// acknowledged status report is committed before this returns.
    fn ingest<'py>(
        &self,
        py: Python<'py>,
        message: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let message = crate::convert::to_incoming_message(&message)?;
        let ack = self.block_on(py, self.service.ingest(message))?;
        records::ingest_ack(py, ack)
    }

    // --- resellers ---

    /// A page of a reseller's installations; by default only those that
    /// are not Healthy, worst first. ``reseller`` is a reseller id (trusted
    /// embedding code) or a reseller token (checked).
    /// ``search`` keeps installations whose SLC, customer, site or a tag
    /// contains it (any case). ``health`` keeps only that health
    /// (``"critical"``, …). ``sort`` is ``"health"`` (worst first),
    /// ``"customer"`` or ``"site"`` (A to Z ignoring case and accents,
    /// unnamed last); ``after`` continues the same sort.
    #[pyo3(signature = (reseller, include_healthy=false, *, page_size=50, after=None, search=None, health=None, sort="health"))]
    #[allow(clippy::too_many_arguments)] // the filters, as keywords
    fn overview<'py>(
        &self,
        py: Python<'py>,
        reseller: &str,
        include_healthy: bool,
        page_size: i128,
        after: Option<&str>,
        search: Option<String>,
        health: Option<&str>,
        sort: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let page_size: u32 = convert::whole(py, page_size, "page_size")?;
        let reseller = self.reseller(py, reseller)?;
        let query = OverviewQuery {
            include_healthy,
            page_size,
            search,
            health: health.map(Health::from_name).transpose().or_raise(py)?,
            order: OverviewOrder::from_name(sort).or_raise(py)?,
            after: after.map(PageCursor::from_token).transpose().or_raise(py)?,
        };
        let page = self.block_on(py, self.service.overview(&reseller, &query))?;
        records::overview_page(py, &page, self.service.now())
    }

    /// Names one of the reseller's installations (all labels replaced;
    /// nothing given clears them), as the reseller's admin, and returns the
    /// labels as stored. ``InvalidInput`` for a bad label, ``NotFound`` for
    /// an installation missing or another reseller's.
    #[pyo3(signature = (reseller, slc, *, customer="", site="", notes="", tags=Vec::new()))]
    #[allow(clippy::too_many_arguments)] // the labels, as keywords
    fn set_labels<'py>(
        &self,
        py: Python<'py>,
        reseller: &str,
        slc: &str,
        customer: &str,
        site: &str,
        notes: &str,
        tags: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let reseller = self.reseller(py, reseller)?;
        let slc = Slc::new(slc).or_raise(py)?;
        let labels = Labels::new(customer, site, notes, &tags).or_raise(py)?;
        let acting = embedding_admin(reseller, self.service.now()).or_raise(py)?;
        self.block_on(py, self.service.set_labels(&acting, &slc, &labels))?;
        records::labels(py, &labels)
    }

    /// Retires one of the reseller's recording servers (removed at the
    /// site), as the reseller's admin: it stops counting for health, its
    /// open conditions are resolved; a message from it brings it back.
    /// ``False`` if it was retired already. ``NotFound`` for an installation
    /// missing or another reseller's, or a server never heard from.
    fn decommission_server(
        &self,
        py: Python<'_>,
        reseller: &str,
        slc: &str,
        server: &str,
    ) -> PyResult<bool> {
        let reseller = self.reseller(py, reseller)?;
        let slc = Slc::new(slc).or_raise(py)?;
        let server = RecordingServerId::new(server).or_raise(py)?;
        let acting = embedding_admin(reseller, self.service.now()).or_raise(py)?;
        self.block_on(py, self.service.decommission_server(&acting, &slc, &server))
    }

    /// The uptime report of the reseller's installations (or of ``slc``
    /// only) over a calendar month (``month="2026-11"``, UTC) or the last
    /// ``last_days`` days: availability, outages, MTTR per installation and
    /// recording server, with Carewatch's own downtime and the reseller's
    /// maintenance windows excluded. A period not over yet is reported up
    /// to now. ``InvalidInput`` for a bad or future period (give exactly
    /// one), ``NotFound`` for an ``slc`` missing or another reseller's.
    #[pyo3(signature = (reseller, *, month=None, last_days=None, slc=None))]
    fn uptime_report<'py>(
        &self,
        py: Python<'py>,
        reseller: &str,
        month: Option<&str>,
        last_days: Option<i128>,
        slc: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let last_days: Option<u32> = last_days
            .map(|d| convert::whole(py, d, "last_days"))
            .transpose()?;
        let reseller = self.reseller(py, reseller)?;
        let period = match (month, last_days) {
            (Some(month), None) => Period::parse_month(month),
            (None, Some(days)) => Period::last_days(self.service.now(), days),
            _ => Err(carewatch_core::Error::InvalidInput {
                field: "period",
                reason: "give month=\"YYYY-MM\" or last_days=N".into(),
            }),
        }
        .or_raise(py)?;
        let report = match slc {
            None => self.block_on(py, self.service.uptime_report(&reseller, period))?,
            Some(slc) => {
                let slc = Slc::new(slc).or_raise(py)?;
                let one = self.block_on(
                    py,
                    self.service.installation_uptime(&reseller, &slc, period),
                )?;
                UptimeReport {
                    reseller,
                    period: one.uptime.period,
                    installations: vec![one],
                }
            }
        };
        records::uptime_report(py, &report)
    }

    /// One of the reseller's installations: servers, active conditions,
    /// recent history. ``NotFound`` if missing or another reseller's.
    fn installation<'py>(
        &self,
        py: Python<'py>,
        reseller: &str,
        slc: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let reseller = self.reseller(py, reseller)?;
        let slc = Slc::new(slc).or_raise(py)?;
        let detail = self.block_on(py, self.service.installation(&reseller, &slc))?;
        records::installation_detail(py, &detail)
    }

    /// Follows changes to the reseller's installations (or to one of them),
    /// from now, or from just after event ``after`` (an ``event_id`` seen
    /// before: every change since comes first). By default only overview
    /// lines (``InstallationChange``); ``all_changes=True`` adds the
    /// servers' events (``ServerChange``) and registration, consent and
    /// subscription changes (``InstallationUpdate``). ``ResumeTooOld`` if
    /// the feed no longer keeps the events after ``after``: re-read the
    /// overview, then watch from now.
    #[pyo3(signature = (reseller, slc=None, *, after=None, all_changes=false))]
    fn watch(
        &self,
        py: Python<'_>,
        reseller: &str,
        slc: Option<&str>,
        after: Option<i128>,
        all_changes: bool,
    ) -> PyResult<Watch> {
        let after: Option<u64> = after.map(|a| convert::whole(py, a, "after")).transpose()?;
        let reseller = self.reseller(py, reseller)?;
        let slc = slc.map(Slc::new).transpose().or_raise(py)?;
        let stream = self.block_on(
            py,
            self.service
                .watch(&reseller, slc.as_ref(), after.map(EventId)),
        )?;
        Ok(Watch::new(
            self.service.clone(),
            stream,
            !all_changes,
            self.opened_in,
        ))
    }

    // --- maintenance ---

    /// Evaluates every server whose availability may have changed with time.
    /// ``carewatch serve`` does this every second; an embedding script that
    /// runs no server calls it before reading.
    fn sweep<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = self.block_on(py, self.service.sweep())?;
        records::sweep_report(py, report)
    }

    /// Records that this node is receiving, then sweeps (one maintenance round).
    fn tick<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let report = self.block_on(py, self.service.tick())?;
        records::sweep_report(py, report)
    }

    /// Operator maintenance: deletes the change-feed events that happened
    /// before ``before`` (a tz-aware ``datetime``) and returns how many.
    /// ``carewatch serve`` does this past its retention (a week by default),
    /// keeping the events its notifier has not processed yet; this call
    /// deletes those too (no notifier runs without a server). Without a
    /// server the feed grows until this is called. A watcher that then
    /// resumes after a deleted event gets ``ResumeTooOld``.
    fn prune_changes(&self, py: Python<'_>, before: Bound<'_, PyAny>) -> PyResult<u64> {
        let before = timestamp(&before, "before")?;
        let every_event = EventId(u64::MAX);
        self.block_on(py, self.service.store().prune_changes(before, every_event))
    }
}

/// The reseller admin the embedding code acts as (it is trusted, or holds
/// the reseller's token).
fn embedding_admin(
    reseller: ResellerId,
    now: carewatch_core::time::Timestamp,
) -> carewatch_core::Result<User> {
    Ok(User {
        reseller,
        login: Login::new("python")?,
        name: "Python embedding".into(),
        role: Role::Admin,
        created_at: now,
    })
}
