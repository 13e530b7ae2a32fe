//! A reseller's team: users, invitations, sessions and API tokens. Each
//! function runs inside the one transaction of its store call.

use carewatch_core::Error;
use carewatch_core::auth::TokenHash;
use carewatch_core::ids::ResellerId;
use carewatch_core::store::limits;
use carewatch_core::team::{ApiTokenRecord, InvitationRecord, Login, Role, SessionRecord, User};
use carewatch_core::time::Timestamp;
use sqlx_core::query::query;
use sqlx_postgres::{PgConnection, PgRow};

use super::notifications::lock_reseller_for_bounded_insert;
use crate::codec::{self, col, ts};
use crate::errors::{DbResult, Failure, corrupt, on_insert};

/// The same refusal for a missing, used or expired invitation.
fn invitation_refused() -> Error {
    Error::Unauthenticated {
        reason: "invitation unknown, used or expired",
    }
}

fn user_exists(login: &Login) -> String {
    format!("user {login}")
}

fn user_not_found(login: &Login) -> Error {
    Error::NotFound {
        what: format!("user {login}"),
    }
}

fn reseller_not_found(reseller: &ResellerId) -> Error {
    Error::NotFound {
        what: format!("reseller {reseller}"),
    }
}

fn login(text: &str) -> DbResult<Login> {
    Ok(Login::new(text).map_err(|e| corrupt("login", e))?)
}

fn role(text: &str) -> DbResult<Role> {
    Ok(Role::parse(text).map_err(|e| corrupt("role", e))?)
}

/// The user columns [`user`] reads, from `users u`, as a literal for `concat!`.
macro_rules! user_columns {
    () => {
        "u.reseller_id, u.login, u.name, u.role, u.created_at"
    };
}

fn user(row: &PgRow, at: usize) -> DbResult<User> {
    Ok(User {
        reseller: codec::reseller_id(&col::<String>(row, at)?)?,
        login: login(&col::<String>(row, at + 1)?)?,
        name: col(row, at + 2)?,
        role: role(&col::<String>(row, at + 3)?)?,
        created_at: ts(col(row, at + 4)?),
    })
}

pub(crate) async fn create_invitation(c: &mut PgConnection, i: &InvitationRecord) -> DbResult<()> {
    // Only the reseller's own users: that another reseller uses a login
    // (logins are global) is not told here; accepting refuses it then.
    let taken = query("SELECT EXISTS (SELECT 1 FROM users WHERE login = $1 AND reseller_id = $2)")
        .bind(i.user.login.as_str())
        .bind(i.user.reseller.as_str())
        .fetch_one(&mut *c)
        .await?;
    if col::<bool>(&taken, 0)? {
        return Err(Error::AlreadyExists {
            what: user_exists(&i.user.login),
        }
        .into());
    }
    query(
        "INSERT INTO invitations (hash, login, name, role, reseller_id, invited_by, created_at, expires_at, used_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
    )
    .bind(&i.hash.as_bytes()[..])
    .bind(i.user.login.as_str())
    .bind(i.user.name.as_str())
    .bind(i.user.role.name())
    .bind(i.user.reseller.as_str())
    .bind(i.invited_by.as_ref().map(Login::as_str))
    .bind(i.user.created_at.as_millis())
    .bind(i.expires_at.as_millis())
    .execute(&mut *c)
    .await
    .map_err(|e| {
        on_insert(
            e,
            || "invitation".into(),
            || reseller_not_found(&i.user.reseller),
        )
    })?;
    Ok(())
}

pub(crate) async fn accept_invitation(
    c: &mut PgConnection,
    hash: &TokenHash,
    password_hash: &str,
    at: Timestamp,
) -> DbResult<User> {
    // Marked used only if unused and unexpired: one statement decides, and
    // a concurrent acceptance waits for this one's row lock, then finds it
    // used (READ COMMITTED re-checks the condition on the new row version).
    let invited = query(
        "UPDATE invitations SET used_at = $2
         WHERE hash = $1 AND used_at IS NULL AND expires_at > $2
         RETURNING reseller_id, login, name, role",
    )
    .bind(&hash.as_bytes()[..])
    .bind(at.as_millis())
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = invited else {
        return Err(invitation_refused().into());
    };
    let user = User {
        reseller: codec::reseller_id(&col::<String>(&row, 0)?)?,
        login: login(&col::<String>(&row, 1)?)?,
        name: col(&row, 2)?,
        role: role(&col::<String>(&row, 3)?)?,
        created_at: at,
    };
    // An error rolls the whole transaction back: the invitation stays unused.
    query(
        "INSERT INTO users (login, reseller_id, password_hash, role, name, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(user.login.as_str())
    .bind(user.reseller.as_str())
    .bind(password_hash)
    .bind(user.role.name())
    .bind(user.name.as_str())
    .bind(at.as_millis())
    .execute(&mut *c)
    .await
    .map_err(|e| {
        match on_insert(
            e,
            || user_exists(&user.login),
            || reseller_not_found(&user.reseller),
        ) {
            // Another reseller's user (the inviter's own are refused when
            // inviting): told like any unusable invitation.
            Failure::Domain(Error::AlreadyExists { .. }) => invitation_refused().into(),
            other => other,
        }
    })?;
    Ok(user)
}

pub(crate) async fn invitation_open(
    c: &mut PgConnection,
    hash: &TokenHash,
    at: Timestamp,
) -> DbResult<bool> {
    let row = query(
        "SELECT EXISTS (SELECT 1 FROM invitations
                        WHERE hash = $1 AND used_at IS NULL AND expires_at > $2)",
    )
    .bind(&hash.as_bytes()[..])
    .bind(at.as_millis())
    .fetch_one(&mut *c)
    .await?;
    col(&row, 0)
}

pub(crate) async fn user_credentials(
    c: &mut PgConnection,
    who: &Login,
) -> DbResult<Option<(User, String)>> {
    let row = query(concat!(
        "SELECT ",
        user_columns!(),
        ", u.password_hash FROM users u WHERE u.login = $1"
    ))
    .bind(who.as_str())
    .fetch_optional(&mut *c)
    .await?;
    match row {
        Some(row) => Ok(Some((user(&row, 0)?, col(&row, 5)?))),
        None => Ok(None),
    }
}

pub(crate) async fn users(c: &mut PgConnection, reseller: &ResellerId) -> DbResult<Vec<User>> {
    let rows = query(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users u WHERE u.reseller_id = $1 ORDER BY u.login"
    ))
    .bind(reseller.as_str())
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|row| user(row, 0)).collect()
}

pub(crate) async fn remove_user(
    c: &mut PgConnection,
    reseller: &ResellerId,
    who: &Login,
) -> DbResult<()> {
    // The user's row first (locked until COMMIT, so no session of theirs
    // can be created meanwhile), then every session of theirs.
    let removed = query("DELETE FROM users WHERE login = $1 AND reseller_id = $2")
        .bind(who.as_str())
        .bind(reseller.as_str())
        .execute(&mut *c)
        .await?
        .rows_affected();
    let cancelled = query(
        "DELETE FROM invitations
         WHERE reseller_id = $2 AND used_at IS NULL AND (login = $1 OR invited_by = $1)",
    )
    .bind(who.as_str())
    .bind(reseller.as_str())
    .execute(&mut *c)
    .await?
    .rows_affected();
    if removed == 0 && cancelled == 0 {
        return Err(user_not_found(who).into());
    }
    // Already gone by the foreign key's cascade; said here too, for this
    // reseller's user only: removing an invitation of a login that another
    // reseller's user holds ended that user's sessions.
    if removed > 0 {
        query("DELETE FROM sessions WHERE login = $1")
            .bind(who.as_str())
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

pub(crate) async fn create_session(c: &mut PgConnection, s: &SessionRecord) -> DbResult<()> {
    query("INSERT INTO sessions (hash, login, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(&s.hash.as_bytes()[..])
        .bind(s.user.login.as_str())
        .bind(s.created_at.as_millis())
        .bind(s.expires_at.as_millis())
        .execute(&mut *c)
        .await
        .map_err(|e| on_insert(e, || "session".into(), || user_not_found(&s.user.login)))?;
    // The new one and the user's newest others: a clock that stepped back
    // must not end the session just made.
    query(
        "DELETE FROM sessions WHERE login = $1 AND hash <> $3 AND hash NOT IN (
             SELECT hash FROM sessions WHERE login = $1 AND hash <> $3
             ORDER BY created_at DESC, hash DESC LIMIT $2)",
    )
    .bind(s.user.login.as_str())
    .bind(i64::try_from(limits::MAX_SESSIONS_PER_USER - 1).unwrap_or(i64::MAX))
    .bind(&s.hash.as_bytes()[..])
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(crate) async fn session(
    c: &mut PgConnection,
    hash: &TokenHash,
    now: Timestamp,
) -> DbResult<Option<SessionRecord>> {
    let row = query(concat!(
        "SELECT ",
        user_columns!(),
        ", s.created_at, s.expires_at
         FROM sessions s JOIN users u ON u.login = s.login
         WHERE s.hash = $1 AND s.expires_at > $2"
    ))
    .bind(&hash.as_bytes()[..])
    .bind(now.as_millis())
    .fetch_optional(&mut *c)
    .await?;
    match row {
        Some(row) => Ok(Some(SessionRecord {
            hash: hash.clone(),
            user: user(&row, 0)?,
            created_at: ts(col(&row, 5)?),
            expires_at: ts(col(&row, 6)?),
        })),
        None => Ok(None),
    }
}

pub(crate) async fn delete_session(c: &mut PgConnection, hash: &TokenHash) -> DbResult<()> {
    query("DELETE FROM sessions WHERE hash = $1")
        .bind(&hash.as_bytes()[..])
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub(crate) async fn prune_sessions(
    c: &mut PgConnection,
    now: Timestamp,
    tokens_ended_before: Timestamp,
) -> DbResult<u64> {
    let sessions = query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now.as_millis())
        .execute(&mut *c)
        .await?
        .rows_affected();
    let invitations = query("DELETE FROM invitations WHERE expires_at <= $1")
        .bind(now.as_millis())
        .execute(&mut *c)
        .await?
        .rows_affected();
    let tokens = query("DELETE FROM api_tokens WHERE revoked_at <= $1 OR expires_at <= $1")
        .bind(tokens_ended_before.as_millis())
        .execute(&mut *c)
        .await?
        .rows_affected();
    Ok(sessions + invitations + tokens)
}

/// Columns of an API token row, in the order [`api_token_row`] reads them.
macro_rules! api_token_columns {
    () => {
        "id, reseller_id, name, hash, created_at, created_by, revoked_at, expires_at"
    };
}

fn api_token_row(row: &PgRow) -> DbResult<ApiTokenRecord> {
    Ok(ApiTokenRecord {
        id: col(row, 0)?,
        reseller: codec::reseller_id(&col::<String>(row, 1)?)?,
        name: col(row, 2)?,
        hash: codec::token_hash(&col::<Vec<u8>>(row, 3)?)?,
        created_at: ts(col(row, 4)?),
        created_by: login(&col::<String>(row, 5)?)?,
        revoked_at: col::<Option<i64>>(row, 6)?.map(ts),
        expires_at: col::<Option<i64>>(row, 7)?.map(ts),
    })
}

pub(crate) async fn create_api_token(c: &mut PgConnection, t: &ApiTokenRecord) -> DbResult<()> {
    lock_reseller_for_bounded_insert(c, &t.reseller).await?;
    let live = api_tokens(c, &t.reseller)
        .await?
        .iter()
        .filter(|token| token.in_use_at(t.created_at))
        .count();
    limits::room_for_api_token(live)?;
    query(concat!(
        "INSERT INTO api_tokens (",
        api_token_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(t.id.as_str())
    .bind(t.reseller.as_str())
    .bind(t.name.as_str())
    .bind(&t.hash.as_bytes()[..])
    .bind(t.created_at.as_millis())
    .bind(t.created_by.as_str())
    .bind(t.revoked_at.map(Timestamp::as_millis))
    .bind(t.expires_at.map(Timestamp::as_millis))
    .execute(&mut *c)
    .await
    .map_err(|e| {
        on_insert(
            e,
            || format!("API token {}", t.id),
            || reseller_not_found(&t.reseller),
        )
    })?;
    Ok(())
}

pub(crate) async fn api_token(c: &mut PgConnection, id: &str) -> DbResult<Option<ApiTokenRecord>> {
    let row = query(concat!(
        "SELECT ",
        api_token_columns!(),
        " FROM api_tokens WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(api_token_row).transpose()
}

pub(crate) async fn api_tokens(
    c: &mut PgConnection,
    reseller: &ResellerId,
) -> DbResult<Vec<ApiTokenRecord>> {
    let rows = query(concat!(
        "SELECT ",
        api_token_columns!(),
        " FROM api_tokens WHERE reseller_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(reseller.as_str())
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(api_token_row).collect()
}

pub(crate) async fn revoke_api_token(
    c: &mut PgConnection,
    reseller: &ResellerId,
    id: &str,
    at: Timestamp,
) -> DbResult<()> {
    let changed = query(
        "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $3)
         WHERE id = $1 AND reseller_id = $2",
    )
    .bind(id)
    .bind(reseller.as_str())
    .bind(at.as_millis())
    .execute(&mut *c)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(Error::NotFound {
            what: format!("API token {id}"),
        }
        .into());
    }
    Ok(())
}
