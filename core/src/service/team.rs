//! A reseller's team: invitations, sign-in and sessions, users, API tokens.
//! The web front end calls these; the rules (roles, lifetimes, throttling)
//! are here.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::Carewatch;
use crate::audit::Action;
use crate::error::{Error, Result};
use crate::ids::ResellerId;
use crate::team::{
    self, ApiTokenRecord, INVITATION_LIFETIME, INVITATION_PREFIX, InvitationRecord, IssuedSecret,
    Login, Password, Role, SESSION_LIFETIME, SESSION_PREFIX, SessionRecord, User,
};
use crate::throttle::FailureThrottle;
use crate::time::Timestamp;

/// A new invitation: the secret for the link, and when it stops working.
#[derive(Debug)]
pub struct IssuedInvitation {
    /// Goes into the link; shown once.
    pub secret: IssuedSecret,
    /// The user it will create.
    pub user: User,
    /// When the link stops working.
    pub expires_at: Timestamp,
}

/// A new session: the cookie's secret and the session.
#[derive(Debug)]
pub struct IssuedSession {
    /// Goes into the cookie; shown once.
    pub secret: IssuedSecret,
    /// The session.
    pub session: SessionRecord,
}

/// A new API token: shown once.
#[derive(Debug)]
pub struct IssuedApiToken {
    /// The token text for the reseller's tool.
    pub secret: IssuedSecret,
    /// As stored.
    pub record: ApiTokenRecord,
}

/// The same refusal for a wrong login, a wrong password and a throttled
/// attempt, so none tells which it was.
fn sign_in_refused() -> Error {
    Error::Unauthenticated {
        reason: "wrong login or password",
    }
}

impl Carewatch {
    /// Invites a user to `reseller`'s team: `by` is the inviting admin
    /// (`None`: the operator, who creates a reseller's first admin).
    pub async fn invite_user(
        &self,
        reseller: &ResellerId,
        login: &Login,
        name: &str,
        role: Role,
        by: Option<&User>,
    ) -> Result<IssuedInvitation> {
        if let Some(by) = by {
            team::require_admin(by)?;
            if by.reseller != *reseller {
                return Err(Error::NotFound {
                    what: format!("reseller {reseller}"),
                });
            }
        }
        if login.as_str() == team::TOKEN_LOGIN {
            // The audit log names a reseller token's actions so: a user of
            // that name would pass for the token there.
            return Err(Error::InvalidInput {
                field: "login",
                reason: format!(
                    "{:?} names the reseller token's actions: choose another",
                    team::TOKEN_LOGIN
                ),
            });
        }
        let now = self.now();
        let user = User {
            reseller: reseller.clone(),
            login: login.clone(),
            name: team::check_name(name)?,
            role,
            created_at: now,
        };
        let secret = team::issue_secret(INVITATION_PREFIX);
        let expires_at = now.saturating_add(INVITATION_LIFETIME);
        self.inner
            .store
            .create_invitation(&InvitationRecord {
                hash: secret.hash.clone(),
                user: user.clone(),
                invited_by: by.map(|u| u.login.clone()),
                expires_at,
            })
            .await?;
        tracing::info!(%reseller, login = %login, role = role.name(), "user invited");
        self.audited(
            by,
            Action::UserInvited,
            login,
            format!("to {reseller} as {}", role.name()),
        )
        .await;
        Ok(IssuedInvitation {
            secret,
            user,
            expires_at,
        })
    }

    /// Accepts an invitation with the new user's password; the invitation
    /// works once. Returns the user. A code that opens no invitation is
    /// refused before the password is hashed (each hash is 19 MiB and tens
    /// of milliseconds of a core, taken in turn with every reseller's
    /// sign-ins), and repeated refusals from `source` are slowed like bad
    /// tokens.
    pub async fn accept_invitation(
        &self,
        secret: &str,
        password: Password,
        source: Option<IpAddr>,
    ) -> Result<User> {
        // All of it under the throttle: a refusal after the password work
        // (a login another reseller uses) counts as a failure too, and only
        // an accepted invitation (used up by it) counts as a success.
        let accept = async {
            let hash = team::parse_secret(INVITATION_PREFIX, secret)?;
            if !self.inner.store.invitation_open(&hash, self.now()).await? {
                return Err(Error::Unauthenticated {
                    reason: "invitation unknown, used or expired",
                });
            }
            let password_hash = self
                .inner
                .password_work
                .run(move || password.hash())
                .await??;
            self.inner
                .store
                .accept_invitation(&hash, &password_hash, self.now())
                .await
        };
        let user = self.throttled(source, accept).await?;
        tracing::info!(reseller = %user.reseller, login = %user.login, "invitation accepted");
        Ok(user)
    }

    /// How long the next sign-in attempt for `login` from `source` would
    /// wait before its password is checked (the larger of the two
    /// throttles): for monitoring and tests, as timing it is blurred by the
    /// password hash's own time.
    pub fn sign_in_delay(&self, login: &str, source: Option<IpAddr>) -> Duration {
        let Ok(login) = Login::new(login) else {
            return Duration::ZERO;
        };
        let throttle = &self.inner.sign_in_failures;
        [
            Some(format!("login:{login}")),
            source.map(|ip| format!("address:{ip}")),
        ]
        .iter()
        .flatten()
        .map(|k| throttle.delay(k, Instant::now()))
        .max()
        .unwrap_or_default()
    }

    /// Signs a user in. Attempts are slowed per login and per address after
    /// repeated failures; every failure reads the same.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<IssuedSession> {
        let login = Login::new(login).map_err(|_| sign_in_refused())?;
        let keys = [
            Some(format!("login:{login}")),
            source.map(|ip| format!("address:{ip}")),
        ];
        let throttle = &self.inner.sign_in_failures;
        let now = Instant::now();
        let delay = keys
            .iter()
            .flatten()
            .map(|k| throttle.begin(k, now))
            .max()
            .unwrap_or_default();
        // Ended however this attempt ends, a caller going away included.
        let _attempts = Attempts {
            throttle,
            keys: &keys,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let stored = self.inner.store.user_credentials(&login).await?;
        let password = password.to_owned();
        let hash = stored.as_ref().map(|(_, hash)| hash.clone());
        let ok = self
            .inner
            .password_work
            .run(move || team::verify_password(&password, hash.as_deref()))
            .await?;
        let from = source.map_or(String::new(), |ip| format!(" from {ip}"));
        let (user, _) = match stored {
            Some(stored) if ok => stored,
            stored => {
                for key in keys.iter().flatten() {
                    let failure = throttle.failed(key, Instant::now());
                    if failure.log {
                        tracing::warn!(source = %key, failures = failure.failures, "sign-in failed");
                    }
                }
                // The account's team sees guesses at it, at most once per
                // login every 10 s with the count. Written in the
                // background: a failure for a login that exists must take
                // as long as one for a login nobody has.
                if let Some((user, _)) = stored
                    && let Some(count) = self
                        .inner
                        .wrong_passwords_recorded
                        .due(login.to_string(), Instant::now())
                {
                    let this = self.clone();
                    let detail = format!("{}{from}", plural(count, "wrong password"));
                    tokio::spawn(async move {
                        this.audited(Some(&user), Action::SignInFailed, &user.login, detail)
                            .await;
                    });
                }
                return Err(sign_in_refused());
            }
        };
        // Only the login's count is forgotten: one's own password, signed in
        // between guesses at others, must not clear the address's count.
        if let Some(login_key) = &keys[0] {
            throttle.succeeded(login_key);
        }
        let now = self.now();
        let secret = team::issue_secret(SESSION_PREFIX);
        let session = SessionRecord {
            hash: secret.hash.clone(),
            user,
            created_at: now,
            expires_at: now.saturating_add(SESSION_LIFETIME),
        };
        self.inner.store.create_session(&session).await?;
        tracing::info!(reseller = %session.user.reseller, login = %session.user.login, "signed in");
        // At most once per login and address every 10 minutes, with the
        // count: a loop of sign-ins must not fill the audit log.
        let place = source.map_or(String::new(), |ip| ip.to_string());
        if let Some(count) = self
            .inner
            .sign_ins_recorded
            .due(format!("{login} {place}"), Instant::now())
        {
            self.audited(
                Some(&session.user),
                Action::SignedIn,
                &login,
                format!("{}{from}", plural(count, "sign-in")),
            )
            .await;
        }
        Ok(IssuedSession { secret, session })
    }

    /// The session a cookie's secret opens: `Unauthenticated` if it is
    /// malformed, unknown, expired, or its user was removed.
    pub async fn session(&self, secret: &str) -> Result<SessionRecord> {
        let hash = team::parse_secret(SESSION_PREFIX, secret)?;
        self.inner
            .store
            .session(&hash, self.now())
            .await?
            .ok_or(Error::Unauthenticated {
                reason: "signed out or session expired",
            })
    }

    /// Ends a session.
    pub async fn sign_out(&self, secret: &str) -> Result<()> {
        let hash = team::parse_secret(SESSION_PREFIX, secret)?;
        self.inner.store.delete_session(&hash).await
    }

    /// Deletes expired sessions and invitations, and API tokens revoked or
    /// expired more than [`API_TOKENS_KEPT_AFTER_END`] ago (their audit
    /// records stay); returns how many. Maintenance does this regularly.
    ///
    /// [`API_TOKENS_KEPT_AFTER_END`]: crate::store::limits::API_TOKENS_KEPT_AFTER_END
    pub async fn prune_credentials(&self) -> Result<u64> {
        let now = self.now();
        let ended = now.saturating_sub(crate::store::limits::API_TOKENS_KEPT_AFTER_END);
        self.inner.store.prune_sessions(now, ended).await
    }

    /// A reseller's users.
    pub async fn users(&self, reseller: &ResellerId) -> Result<Vec<User>> {
        self.inner.store.users(reseller).await
    }

    /// Removes a user of the acting admin's reseller; their sessions end at
    /// once. `NotFound` for anybody else's user, like a missing one.
    pub async fn remove_user(&self, acting: &User, login: &Login) -> Result<()> {
        team::require_admin(acting)?;
        self.inner
            .store
            .remove_user(&acting.reseller, login)
            .await?;
        tracing::info!(reseller = %acting.reseller, login = %login, by = %acting.login, "user removed");
        self.audited(Some(acting), Action::UserRemoved, login, "")
            .await;
        Ok(())
    }

    /// Creates a named read-only API token for the acting admin's reseller,
    /// expiring after `valid_for` (1 day to 2 years) or never (`None`).
    pub async fn create_api_token(
        &self,
        acting: &User,
        name: &str,
        valid_for: Option<Duration>,
    ) -> Result<IssuedApiToken> {
        team::require_admin(acting)?;
        let valid_for = team::check_api_token_lifetime(valid_for)?;
        let (id, secret) = team::issue_api_token();
        let now = self.now();
        let record = ApiTokenRecord {
            id,
            reseller: acting.reseller.clone(),
            name: team::check_name(name)?,
            hash: secret.hash.clone(),
            created_at: now,
            created_by: acting.login.clone(),
            revoked_at: None,
            expires_at: valid_for.map(|d| now.saturating_add(d)),
        };
        self.inner.store.create_api_token(&record).await?;
        tracing::info!(reseller = %record.reseller, id = %record.id, by = %acting.login, "API token created");
        self.audited(
            Some(acting),
            Action::ApiTokenCreated,
            &record.id,
            match record.expires_at {
                Some(at) => format!("named {:?}, expires at {at}", record.name),
                None => format!("named {:?}, never expires", record.name),
            },
        )
        .await;
        Ok(IssuedApiToken { secret, record })
    }

    /// A reseller's API tokens (without secrets), newest first.
    pub async fn api_tokens(&self, reseller: &ResellerId) -> Result<Vec<ApiTokenRecord>> {
        self.inner.store.api_tokens(reseller).await
    }

    /// Revokes an API token of the acting admin's reseller.
    pub async fn revoke_api_token(&self, acting: &User, id: &str) -> Result<()> {
        team::require_admin(acting)?;
        self.inner
            .store
            .revoke_api_token(&acting.reseller, id, self.now())
            .await?;
        tracing::info!(reseller = %acting.reseller, id, by = %acting.login, "API token revoked");
        self.audited(Some(acting), Action::ApiTokenRevoked, id, "")
            .await;
        Ok(())
    }

    /// The reseller a read-only credential belongs to: a reseller token
    /// (`cwr.`) or a named API token (`cwa.`). Failures are slowed per
    /// address and logged like every authentication.
    pub async fn authenticate_reader(
        &self,
        token: &str,
        source: Option<IpAddr>,
    ) -> Result<ResellerId> {
        let token = token.trim();
        if !token.starts_with(team::API_TOKEN_PREFIX) {
            return self.authenticate_reseller(token, source).await;
        }
        let check = async {
            let (id, hash) = team::parse_api_token(token)?;
            let stored = self.inner.store.api_token(&id).await?;
            let fallback = crate::auth::TokenHash::from_slice(&[0; 32]);
            let stored_hash = stored.as_ref().map(|t| &t.hash).or(fallback.as_ref());
            match (&stored, stored_hash) {
                (Some(t), Some(h)) if h.matches(&hash) && t.revoked_at.is_none() => {
                    // Only its holder learns that it expired.
                    if t.in_use_at(self.now()) {
                        Ok(t.reseller.clone())
                    } else {
                        Err(Error::Unauthenticated {
                            reason: "the API token has expired: an admin makes a new one",
                        })
                    }
                }
                _ => Err(Error::Unauthenticated {
                    reason: "invalid or revoked token",
                }),
            }
        };
        self.throttled(source, check).await
    }
}

/// Hashes a password on a blocking thread (Argon2 is slow on purpose).
/// Sign-in attempts begun on the throttle, ended when dropped.
struct Attempts<'a> {
    throttle: &'a FailureThrottle,
    keys: &'a [Option<String>],
}

impl Drop for Attempts<'_> {
    fn drop(&mut self) {
        for key in self.keys.iter().flatten() {
            self.throttle.end(key);
        }
    }
}

/// How often a login's sign-ins from one address are recorded in the
/// audit log (with how many there were since the last record).
pub const SIGN_INS_RECORDED_EVERY: Duration = Duration::from_secs(600);

/// How often a login's wrong passwords are recorded in the audit log (with
/// how many there were since the last record).
pub const WRONG_PASSWORDS_RECORDED_EVERY: Duration = Duration::from_secs(10);

/// "1 failure", "3 failures".
fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
