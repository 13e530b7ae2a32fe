//! A reseller's team: users, invitations, sessions and API tokens. Each
//! function runs inside the one transaction of its store call.

use carewatch_core::auth::TokenHash;
use carewatch_core::ids::ResellerId;
use carewatch_core::store::limits;
use carewatch_core::team::{ApiTokenRecord, InvitationRecord, Login, Role, SessionRecord, User};
use carewatch_core::time::Timestamp;
use carewatch_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{
    self, RowExt, corrupt, is_foreign_key_violation, is_unique_violation, map_err, ts,
};

/// The same refusal for a missing, used or expired invitation.
fn invitation_refused() -> Error {
    Error::Unauthenticated {
        reason: "invitation unknown, used or expired",
    }
}

fn user_exists(login: &Login) -> Error {
    Error::AlreadyExists {
        what: format!("user {login}"),
    }
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

fn login(text: &str) -> Result<Login> {
    Login::new(text).map_err(|e| corrupt("login", e))
}

fn role(text: &str) -> Result<Role> {
    Role::parse(text).map_err(|e| corrupt("role", e))
}

/// The user columns [`user`] reads, from `users u`.
const USER_COLUMNS: &str = "u.reseller_id, u.login, u.name, u.role, u.created_at";

fn user(row: &Row<'_>, at: usize) -> Result<User> {
    Ok(User {
        reseller: codec::reseller_id(&row.col::<String>(at)?)?,
        login: login(&row.col::<String>(at + 1)?)?,
        name: row.col(at + 2)?,
        role: role(&row.col::<String>(at + 3)?)?,
        created_at: ts(row.col(at + 4)?),
    })
}

pub(crate) fn create_invitation(tx: &Connection, i: &InvitationRecord) -> Result<()> {
    // Only the reseller's own users: that another reseller uses a login
    // (logins are global) is not told here; accepting refuses it then.
    let taken: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE login = ?1 AND reseller_id = ?2)",
            [i.user.login.as_str(), i.user.reseller.as_str()],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    if taken {
        return Err(user_exists(&i.user.login));
    }
    tx.execute(
        "INSERT INTO invitations (hash, login, name, role, reseller_id, invited_by, created_at, expires_at, used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL)",
        params![
            &i.hash.as_bytes()[..],
            i.user.login.as_str(),
            i.user.name,
            i.user.role.name(),
            i.user.reseller.as_str(),
            i.invited_by.as_ref().map(Login::as_str),
            i.user.created_at.as_millis(),
            i.expires_at.as_millis(),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: "invitation".into(),
            }
        } else if is_foreign_key_violation(&e) {
            reseller_not_found(&i.user.reseller)
        } else {
            map_err(e)
        }
    })?;
    Ok(())
}

pub(crate) fn accept_invitation(
    tx: &Connection,
    hash: &TokenHash,
    password_hash: &str,
    at: Timestamp,
) -> Result<User> {
    // Marked used only if unused and unexpired: one statement decides.
    let invited = tx
        .query_row(
            "UPDATE invitations SET used_at = ?2
             WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2
             RETURNING reseller_id, login, name, role",
            params![&hash.as_bytes()[..], at.as_millis()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()
        .map_err(map_err)?;
    let Some((reseller, login_text, name, role_text)) = invited else {
        return Err(invitation_refused());
    };
    let user = User {
        reseller: codec::reseller_id(&reseller)?,
        login: login(&login_text)?,
        name,
        role: role(&role_text)?,
        created_at: at,
    };
    // An error rolls the whole transaction back: the invitation stays unused.
    tx.execute(
        "INSERT INTO users (login, reseller_id, password_hash, role, name, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            user.login.as_str(),
            user.reseller.as_str(),
            password_hash,
            user.role.name(),
            user.name,
            at.as_millis(),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            // Another reseller's user (the inviter's own are refused when
            // inviting): told like any unusable invitation.
            invitation_refused()
        } else if is_foreign_key_violation(&e) {
            reseller_not_found(&user.reseller)
        } else {
            map_err(e)
        }
    })?;
    Ok(user)
}

pub(crate) fn invitation_open(tx: &Connection, hash: &TokenHash, at: Timestamp) -> Result<bool> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM invitations
                        WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2)",
        params![&hash.as_bytes()[..], at.as_millis()],
        |r| r.get::<_, bool>(0),
    )
    .map_err(map_err)
}

pub(crate) fn user_credentials(tx: &Connection, who: &Login) -> Result<Option<(User, String)>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.login = ?1"
        ))
        .map_err(map_err)?;
    let mut rows = stmt.query([who.as_str()]).map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        Some(row) => Ok(Some((user(row, 0)?, row.col(5)?))),
        None => Ok(None),
    }
}

pub(crate) fn users(tx: &Connection, reseller: &ResellerId) -> Result<Vec<User>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.reseller_id = ?1 ORDER BY u.login"
        ))
        .map_err(map_err)?;
    let mut rows = stmt.query([reseller.as_str()]).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(user(row, 0)?);
    }
    Ok(out)
}

pub(crate) fn remove_user(tx: &Connection, reseller: &ResellerId, who: &Login) -> Result<()> {
    tx.execute(
        "DELETE FROM sessions WHERE login = ?1
             AND EXISTS (SELECT 1 FROM users WHERE login = ?1 AND reseller_id = ?2)",
        params![who.as_str(), reseller.as_str()],
    )
    .map_err(map_err)?;
    let removed = tx
        .execute(
            "DELETE FROM users WHERE login = ?1 AND reseller_id = ?2",
            params![who.as_str(), reseller.as_str()],
        )
        .map_err(map_err)?;
    let cancelled = tx
        .execute(
            "DELETE FROM invitations
             WHERE reseller_id = ?2 AND used_at IS NULL AND (login = ?1 OR invited_by = ?1)",
            params![who.as_str(), reseller.as_str()],
        )
        .map_err(map_err)?;
    if removed == 0 && cancelled == 0 {
        return Err(user_not_found(who));
    }
    Ok(())
}

pub(crate) fn create_session(tx: &Connection, s: &SessionRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO sessions (hash, login, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            &s.hash.as_bytes()[..],
            s.user.login.as_str(),
            s.created_at.as_millis(),
            s.expires_at.as_millis(),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: "session".into(),
            }
        } else if is_foreign_key_violation(&e) {
            user_not_found(&s.user.login)
        } else {
            map_err(e)
        }
    })?;
    // The new one and the user's newest others: a clock that stepped back
    // must not end the session just made.
    tx.execute(
        "DELETE FROM sessions WHERE login = ?1 AND hash <> ?3 AND hash NOT IN (
             SELECT hash FROM sessions WHERE login = ?1 AND hash <> ?3
             ORDER BY created_at DESC, hash DESC LIMIT ?2)",
        params![
            s.user.login.as_str(),
            i64::try_from(limits::MAX_SESSIONS_PER_USER - 1).unwrap_or(i64::MAX),
            &s.hash.as_bytes()[..],
        ],
    )
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn session(
    tx: &Connection,
    hash: &TokenHash,
    now: Timestamp,
) -> Result<Option<SessionRecord>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS}, s.created_at, s.expires_at
             FROM sessions s JOIN users u ON u.login = s.login
             WHERE s.hash = ?1 AND s.expires_at > ?2"
        ))
        .map_err(map_err)?;
    let mut rows = stmt
        .query(params![&hash.as_bytes()[..], now.as_millis()])
        .map_err(map_err)?;
    match rows.next().map_err(map_err)? {
        Some(row) => Ok(Some(SessionRecord {
            hash: hash.clone(),
            user: user(row, 0)?,
            created_at: ts(row.col(5)?),
            expires_at: ts(row.col(6)?),
        })),
        None => Ok(None),
    }
}

pub(crate) fn delete_session(tx: &Connection, hash: &TokenHash) -> Result<()> {
    tx.execute(
        "DELETE FROM sessions WHERE hash = ?1",
        [&hash.as_bytes()[..]],
    )
    .map_err(map_err)?;
    Ok(())
}

pub(crate) fn prune_sessions(
    tx: &Connection,
    now: Timestamp,
    tokens_ended_before: Timestamp,
) -> Result<u64> {
    let sessions = tx
        .execute(
            "DELETE FROM sessions WHERE expires_at <= ?1",
            [now.as_millis()],
        )
        .map_err(map_err)?;
    let invitations = tx
        .execute(
            "DELETE FROM invitations WHERE expires_at <= ?1",
            [now.as_millis()],
        )
        .map_err(map_err)?;
    let tokens = tx
        .execute(
            "DELETE FROM api_tokens WHERE revoked_at <= ?1 OR expires_at <= ?1",
            [tokens_ended_before.as_millis()],
        )
        .map_err(map_err)?;
    Ok((sessions + invitations + tokens) as u64)
}

/// Columns of an API token row, in the order [`api_token_row`] reads them.
const API_TOKEN_COLUMNS: &str =
    "id, reseller_id, name, hash, created_at, created_by, revoked_at, expires_at";

fn api_token_row(row: &Row<'_>) -> Result<ApiTokenRecord> {
    Ok(ApiTokenRecord {
        id: row.col(0)?,
        reseller: codec::reseller_id(&row.col::<String>(1)?)?,
        name: row.col(2)?,
        hash: codec::token_hash(&row.col::<Vec<u8>>(3)?)?,
        created_at: ts(row.col(4)?),
        created_by: login(&row.col::<String>(5)?)?,
        revoked_at: row.col::<Option<i64>>(6)?.map(ts),
        expires_at: row.col::<Option<i64>>(7)?.map(ts),
    })
}

pub(crate) fn create_api_token(tx: &Connection, t: &ApiTokenRecord) -> Result<()> {
    // Writes take turns on SQLite: the count cannot change before the insert.
    let live = api_tokens(tx, &t.reseller)?
        .iter()
        .filter(|token| token.in_use_at(t.created_at))
        .count();
    limits::room_for_api_token(live)?;
    tx.execute(
        &format!(
            "INSERT INTO api_tokens ({API_TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        params![
            t.id,
            t.reseller.as_str(),
            t.name,
            &t.hash.as_bytes()[..],
            t.created_at.as_millis(),
            t.created_by.as_str(),
            t.revoked_at.map(Timestamp::as_millis),
            t.expires_at.map(Timestamp::as_millis),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::AlreadyExists {
                what: format!("API token {}", t.id),
            }
        } else if is_foreign_key_violation(&e) {
            reseller_not_found(&t.reseller)
        } else {
            map_err(e)
        }
    })?;
    Ok(())
}

pub(crate) fn api_token(tx: &Connection, id: &str) -> Result<Option<ApiTokenRecord>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"
        ))
        .map_err(map_err)?;
    let mut rows = stmt.query([id]).map_err(map_err)?;
    rows.next().map_err(map_err)?.map(api_token_row).transpose()
}

pub(crate) fn api_tokens(tx: &Connection, reseller: &ResellerId) -> Result<Vec<ApiTokenRecord>> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE reseller_id = ?1
             ORDER BY created_at DESC, id"
        ))
        .map_err(map_err)?;
    let mut rows = stmt.query([reseller.as_str()]).map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(api_token_row(row)?);
    }
    Ok(out)
}

pub(crate) fn revoke_api_token(
    tx: &Connection,
    reseller: &ResellerId,
    id: &str,
    at: Timestamp,
) -> Result<()> {
    let changed = tx
        .execute(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?3)
             WHERE id = ?1 AND reseller_id = ?2",
            params![id, reseller.as_str(), at.as_millis()],
        )
        .map_err(map_err)?;
    if changed == 0 {
        return Err(Error::NotFound {
            what: format!("API token {id}"),
        });
    }
    Ok(())
}
