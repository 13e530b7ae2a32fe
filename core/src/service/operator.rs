//! What the operator does: resellers, tokens, registrations, subscriptions,
//! consent and installation keys.

use std::net::IpAddr;
use std::time::Instant;

use super::Carewatch;
use crate::audit::{self, Action, AuditRecord};
use crate::auth::{self, IssuedToken, Principal, parse_token};
use crate::error::{Error, Result};
use crate::ids::{RecordingServerId, ResellerId, Slc, checked_text};
use crate::installation::{Installation, Product};
use crate::seal::{InstallationKey, KeyId};
use crate::store::{HistoryEvent, InstallationUpdate, Reseller, Store, Transfer};
use crate::time::Timestamp;

/// Gives operator `name` a new token (adding the operator if it has none),
/// written straight into `store` with its audit record, without a running
/// service: for `carewatch operator-token`, when the token printed at the
/// first start was lost (a kill before it was printed, logs gone with a
/// container) and no operator is left to issue one. Whoever can open the
/// database may do this; the old token stops working.
pub async fn replace_operator_token(
    store: &dyn Store,
    name: &ResellerId,
    at: Timestamp,
) -> Result<IssuedToken> {
    let issued = auth::issue_token(&Principal::Operator(name.clone()));
    store.set_operator_token(name, &issued.hash).await?;
    let record = AuditRecord::new(
        at,
        audit::current_operator(),
        Action::OperatorTokenIssued,
        name.as_str(),
        "replaced with direct access to the database",
    );
    if let Err(e) = store.append_audit(&record).await {
        tracing::error!(error = %e, target = %name,
            "the operator token was replaced but its audit record could not be written");
    }
    Ok(issued)
}

impl Carewatch {
    /// Creates a reseller; returns its token, shown this once.
    pub async fn create_reseller(&self, id: &ResellerId, name: &str) -> Result<IssuedToken> {
        let name = checked_text("reseller name", name, 128)?;
        let issued = auth::issue_token(&Principal::Reseller(id.clone()));
        let reseller = Reseller {
            id: id.clone(),
            name,
            created_at: self.now(),
        };
        self.inner
            .store
            .create_reseller(&reseller, &issued.hash)
            .await?;
        tracing::info!(reseller = %id, "reseller created");
        self.audited(None, Action::ResellerCreated, id, &reseller.name)
            .await;
        Ok(issued)
    }

    /// Replaces a reseller's token; the old one stops working at once.
    pub async fn rotate_reseller_token(&self, id: &ResellerId) -> Result<IssuedToken> {
        let issued = auth::issue_token(&Principal::Reseller(id.clone()));
        self.inner
            .store
            .set_reseller_token(id, &issued.hash)
            .await?;
        self.audited(None, Action::ResellerTokenRotated, id, "")
            .await;
        Ok(issued)
    }

    /// Issues (or replaces) the token of operator `name`.
    pub async fn issue_operator_token(&self, name: &ResellerId) -> Result<IssuedToken> {
        let issued = auth::issue_token(&Principal::Operator(name.clone()));
        self.inner
            .store
            .set_operator_token(name, &issued.hash)
            .await?;
        self.audited(None, Action::OperatorTokenIssued, name, "")
            .await;
        Ok(issued)
    }

    /// On first start: issues an operator token if none exists yet. Two
    /// nodes starting on a fresh database at once both issued one, and the
    /// token the second stored replaced the first's, which its node had
    /// printed already; now only the node that stored one prints it.
    pub async fn ensure_operator(&self, name: &ResellerId) -> Result<Option<IssuedToken>> {
        if self.inner.store.has_operator().await? {
            return Ok(None);
        }
        let issued = auth::issue_token(&Principal::Operator(name.clone()));
        if !self
            .inner
            .store
            .add_first_operator(name, &issued.hash)
            .await?
        {
            return Ok(None);
        }
        self.audited(None, Action::OperatorTokenIssued, name, "")
            .await;
        Ok(Some(issued))
    }

    /// Checks a token and says whose it is. `source` (the caller's address,
    /// when there is one) is slowed down after repeated failures; every
    /// failure is logged at a bounded rate, never with the token.
    pub async fn authenticate(&self, token: &str, source: Option<IpAddr>) -> Result<Principal> {
        self.throttled(source, self.check_token(token)).await
    }

    /// How long the next refusal of a bad token from `source` would be
    /// delayed (for monitoring and tests).
    pub fn authentication_delay(&self, source: IpAddr) -> std::time::Duration {
        self.inner
            .auth_failures
            .delay(&source.to_string(), Instant::now())
    }

    /// Runs a credential check for `source`: after repeated failures from
    /// it, its refusals are answered ever more slowly, each failure logged at
    /// a bounded rate (never the credential). A valid credential is never
    /// delayed: behind a proxy every client shares one address, and one
    /// client's bad tokens must not slow the others.
    pub(super) async fn throttled<T>(
        &self,
        source: Option<IpAddr>,
        check: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let source = source.map(|ip| ip.to_string());
        let result = check.await;
        match (&result, &source) {
            (Err(Error::Unauthenticated { reason }), _) => {
                let now = Instant::now();
                let delay = source
                    .as_deref()
                    .map(|s| self.inner.auth_failures.delay(s, now))
                    .unwrap_or_default();
                let failure = source
                    .as_deref()
                    .map(|s| self.inner.auth_failures.failed(s, now));
                if failure.is_none_or(|f| f.log) {
                    tracing::warn!(
                        source = source.as_deref().unwrap_or("-"),
                        failures = failure.map_or(1, |f| f.failures),
                        reason,
                        "authentication failed"
                    );
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
            }
            (Ok(_), Some(source)) => self.inner.auth_failures.succeeded(source),
            _ => {}
        }
        result
    }

    async fn check_token(&self, token: &str) -> Result<Principal> {
        let presented = parse_token(token)?;
        let stored = match &presented.principal {
            Principal::Reseller(id) => self.inner.store.reseller_token(id).await?,
            Principal::Operator(name) => self.inner.store.operator_token(name).await?,
        };
        auth::verify(&presented, stored.as_ref())?;
        Ok(presented.principal)
    }

    /// Checks a reseller token; returns the reseller.
    pub async fn authenticate_reseller(
        &self,
        token: &str,
        source: Option<IpAddr>,
    ) -> Result<ResellerId> {
        match self.authenticate(token, source).await? {
            Principal::Reseller(id) => Ok(id),
            Principal::Operator(_) => Err(Error::Unauthenticated {
                reason: "an operator token is not a reseller token",
            }),
        }
    }

    /// Checks an operator token.
    pub async fn authenticate_operator(
        &self,
        token: &str,
        source: Option<IpAddr>,
    ) -> Result<ResellerId> {
        match self.authenticate(token, source).await? {
            Principal::Operator(name) => Ok(name),
            Principal::Reseller(_) => Err(Error::Unauthenticated {
                reason: "a reseller token is not an operator token",
            }),
        }
    }

    /// All resellers.
    pub async fn resellers(&self) -> Result<Vec<Reseller>> {
        self.inner.store.resellers().await
    }

    /// Records that `reseller` registered `slc`. The installation starts
    /// without consent and without subscription: both are set explicitly.
    pub async fn register_installation(
        &self,
        slc: &Slc,
        reseller: &ResellerId,
        product: Product,
    ) -> Result<Installation> {
        let installation = Installation {
            slc: slc.clone(),
            reseller: reseller.clone(),
            product,
            subscription_expires_at: None,
            consent: false,
            registered_at: self.now(),
        };
        self.inner
            .store
            .register_installation(&installation)
            .await?;
        self.feed_written();
        tracing::info!(%slc, %reseller, "installation registered");
        self.audited(
            None,
            Action::InstallationRegistered,
            slc,
            format!(
                "to {reseller}, {} {}",
                installation.product.name(),
                installation.product.version()
            ),
        )
        .await;
        Ok(installation)
    }

    /// Moves an installation to reseller `to` (the registration centre
    /// moved its SLC), atomically: the old reseller finds it nowhere from
    /// now on (open watches get one `Removed` event, pending notifications
    /// are dropped, its labels and maintenance windows go); unless
    /// `share_history`, the new reseller sees only what happens from now
    /// on ([`crate::store::Store::transfer_installation`]).
    pub async fn transfer_installation(
        &self,
        slc: &Slc,
        to: &ResellerId,
        share_history: bool,
    ) -> Result<Installation> {
        let transfer = Transfer {
            slc: slc.clone(),
            to: to.clone(),
            at: self.now(),
            share_history,
        };
        let moved = self.inner.store.transfer_installation(&transfer).await?;
        self.feed_written();
        tracing::info!(%slc, to = %to, share_history, "installation transferred");
        let history = if share_history {
            "history shared"
        } else {
            "history kept from the new reseller"
        };
        self.audited(
            None,
            Action::InstallationTransferred,
            slc,
            format!("to {to}, {history}"),
        )
        .await;
        Ok(moved)
    }

    /// An installation's whole history, newest first (at most 1,000 events):
    /// the operator's view, including what a transfer hid from resellers.
    pub async fn full_history(&self, slc: &Slc, limit: u32) -> Result<Vec<HistoryEvent>> {
        self.inner
            .store
            .full_history(slc, limit.clamp(1, 1000))
            .await
    }

    /// Sets when Care Plus ends (`None`: no subscription).
    pub async fn set_subscription(
        &self,
        slc: &Slc,
        expires_at: Option<Timestamp>,
    ) -> Result<Installation> {
        self.update(slc, &InstallationUpdate::Subscription(expires_at))
            .await
    }

    async fn update(&self, slc: &Slc, update: &InstallationUpdate) -> Result<Installation> {
        let updated = self
            .inner
            .store
            .update_installation(slc, update, self.now())
            .await?;
        self.feed_written();
        let (action, detail) = match update {
            InstallationUpdate::Consent(true) => (Action::ConsentChanged, "accepted".to_owned()),
            InstallationUpdate::Consent(false) => (Action::ConsentChanged, "withdrawn".to_owned()),
            InstallationUpdate::Subscription(Some(until)) => {
                (Action::SubscriptionChanged, format!("ends {until}"))
            }
            InstallationUpdate::Subscription(None) => {
                (Action::SubscriptionChanged, "removed".to_owned())
            }
            InstallationUpdate::Product(p) => (
                Action::ProductChanged,
                format!("{} {}", p.name(), p.version()),
            ),
        };
        self.audited(None, action, slc, detail).await;
        Ok(updated)
    }

    /// Retires a recording server of any installation (the operator's
    /// version of [`Carewatch::decommission_server`]).
    pub async fn decommission_server_as_operator(
        &self,
        slc: &Slc,
        server: &RecordingServerId,
    ) -> Result<bool> {
        let changed = self
            .inner
            .store
            .decommission_server(None, slc, server, self.now())
            .await?;
        self.feed_written();
        if changed {
            self.audited(
                None,
                Action::ServerDecommissioned,
                slc,
                format!("recording server {server}"),
            )
            .await;
        }
        Ok(changed)
    }

    /// Records the owner's consent (or its withdrawal).
    pub async fn set_consent(&self, slc: &Slc, accepted: bool) -> Result<Installation> {
        self.update(slc, &InstallationUpdate::Consent(accepted))
            .await
    }

    /// Changes what the installation runs.
    pub async fn set_product(&self, slc: &Slc, product: Product) -> Result<Installation> {
        self.update(slc, &InstallationUpdate::Product(product))
            .await
    }

    /// Issues a new key for an installation and returns it, the only time it
    /// is seen in clear: it is stored sealed under the master key. Earlier
    /// keys stay valid until retired, so recording servers can switch over.
    pub async fn issue_installation_key(&self, slc: &Slc) -> Result<InstallationKey> {
        let existing = self.inner.store.installation_keys(slc).await?;
        if existing.is_empty() && self.inner.store.installation(slc).await?.is_none() {
            return Err(Error::installation_not_found(slc));
        }
        let key =
            InstallationKey::generate(auth::next_key_id(existing.iter().map(|k| k.wrapped.id)));
        let wrapped = self.inner.config.master_keys.current().wrap(slc, &key);
        self.inner
            .store
            .add_installation_key(slc, &wrapped, self.now())
            .await?;
        tracing::info!(%slc, key = %key.id(), "installation key issued");
        self.audited(None, Action::KeyIssued, slc, format!("key {}", key.id()))
            .await;
        Ok(key)
    }

    /// Retires a key: messages sealed with it are refused from now on.
    pub async fn retire_installation_key(&self, slc: &Slc, id: KeyId) -> Result<()> {
        self.inner
            .store
            .retire_installation_key(slc, id, self.now())
            .await?;
        self.audited(None, Action::KeyRetired, slc, format!("key {id}"))
            .await;
        Ok(())
    }
}
