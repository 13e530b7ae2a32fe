//! An audit record as both backends store it.

use super::{corrupt, login, reseller_id};
use crate::audit::{Action, Actor, AuditRecord};
use crate::error::Error;
use crate::time::Timestamp;

/// The actor columns of an audit record: its kind (`operator` or `user`),
/// the user's reseller (`None` for the operator: the column a reseller's
/// admins read by), and the operator's name or the user's login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActorColumns<'a> {
    /// `operator` or `user`.
    pub kind: &'a str,
    /// The user's reseller.
    pub reseller: Option<&'a str>,
    /// The operator's name or the user's login.
    pub name: &'a str,
}

impl<'a> From<&'a Actor> for ActorColumns<'a> {
    fn from(actor: &'a Actor) -> Self {
        match actor {
            Actor::Operator { name } => Self {
                kind: "operator",
                reseller: None,
                name,
            },
            Actor::User { reseller, login } => Self {
                kind: "user",
                reseller: Some(reseller.as_str()),
                name: login.as_str(),
            },
        }
    }
}

impl ActorColumns<'_> {
    /// Decodes the stored actor.
    pub fn decode(&self) -> Result<Actor, Error> {
        match (self.kind, self.reseller) {
            ("operator", None) => Ok(Actor::Operator {
                name: self.name.to_owned(),
            }),
            ("user", Some(reseller)) => Ok(Actor::User {
                reseller: reseller_id(reseller)?,
                login: login(self.name)?,
            }),
            (kind, _) => Err(corrupt(
                "audit actor",
                format!("kind {kind:?} with reseller {:?}", self.reseller),
            )),
        }
    }
}

/// Decodes a stored audit record. An action this version does not know (a
/// newer Carewatch's, during a rolling upgrade) is read as
/// [`Action::Unknown`]: one record must not fail the whole log.
pub fn audit_record(
    at: i64,
    actor: ActorColumns<'_>,
    action: &str,
    target: String,
    detail: String,
) -> Result<AuditRecord, Error> {
    Ok(AuditRecord {
        at: Timestamp::from_millis(at),
        actor: actor.decode()?,
        action: Action::parse(action).unwrap_or(Action::Unknown),
        target,
        detail,
    })
}
