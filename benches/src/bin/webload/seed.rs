//! Seeding: the data directory, the operator's admin and the totals check.

use super::*;
use crate::probes::bearer_header;

/// Writes the data directory `carewatch serve` will start on.
pub(crate) async fn seed(dir: &Path, args: &Args) -> Result<Seeded, BoxError> {
    let (master_key, _) = key_file::load_or_create(&dir.join(MASTER_KEY_FILE))?;
    TlsIdentity::self_signed_in(dir, &[])?;
    let store = SqliteStore::open(dir.join(DATABASE)).await?;
    let operator = ResellerId::new(OPERATOR)?;
    let operator_token = auth::issue_token(&Principal::Operator(operator.clone()));
    store
        .set_operator_token(&operator, &operator_token.hash)
        .await?;

    let fleet = Fleet::generate(args.installations - args.pending);
    let reseller_token = auth::issue_token(&Principal::Reseller(fleet.reseller.clone()));
    let at = SystemClock.now();
    fleet.seed_at(&store, &reseller_token.hash, at).await?;
    let product = Product::new("XProtect Corporate", "2022 R1")?;
    let store_ref = &store;
    futures::stream::iter(0..args.pending)
        .map(Ok)
        .try_for_each_concurrent(CONCURRENT_WRITES, |n| {
            let installation = Slc::new(&format!("PD-{n:06}")).map(|slc| Installation {
                slc,
                reseller: fleet.reseller.clone(),
                product: product.clone(),
                subscription_expires_at: Some(
                    at.saturating_add(Duration::from_secs(365 * 24 * 3600)),
                ),
                consent: true,
                registered_at: at,
            });
            async move { store_ref.register_installation(&installation?).await }
        })
        .await?;

    let keys: Vec<InstallationKey> = fleet
        .installations
        .iter()
        .map(|_| InstallationKey::generate(KeyId::new(1)))
        .collect();
    let master_key = &master_key;
    futures::stream::iter(fleet.installations.iter().zip(&keys))
        .map(Ok)
        .try_for_each_concurrent(CONCURRENT_WRITES, |(installation, key)| async move {
            let wrapped = master_key.wrap(&installation.slc, key);
            store_ref
                .add_installation_key(&installation.slc, &wrapped, at)
                .await
        })
        .await?;

    // The fleet reported until now, and no live server falls due for an hour.
    fleet.refresh(&store, SEEDED_INTERVAL).await?;

    // Viewers and the live pages' sessions; one password hash for all.
    let password_hash = Password::new(PASSWORD)?.hash()?;
    let users: Vec<User> = futures::stream::iter(0..args.users)
        .map(|n| {
            let reseller = fleet.reseller.clone();
            let password_hash = &password_hash;
            async move {
                let secret = issue_secret(INVITATION_PREFIX);
                let invitation = InvitationRecord {
                    hash: secret.hash.clone(),
                    user: User {
                        reseller,
                        login: Login::new(&format!("viewer{n:04}@bench.example"))?,
                        name: format!("Technician {n}"),
                        role: Role::Viewer,
                        created_at: at,
                    },
                    invited_by: None,
                    expires_at: at.saturating_add(Duration::from_secs(3600)),
                };
                store_ref.create_invitation(&invitation).await?;
                store_ref
                    .accept_invitation(&secret.hash, password_hash, at)
                    .await
            }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .try_collect()
        .await?;
    let now = SystemClock.now();
    let sessions: Vec<String> = futures::stream::iter(0..args.pages)
        .map(|n| {
            let user = users[n % users.len()].clone();
            async move {
                let secret = issue_secret(SESSION_PREFIX);
                store_ref
                    .create_session(&SessionRecord {
                        hash: secret.hash.clone(),
                        user,
                        created_at: now,
                        expires_at: now.saturating_add(SESSION_LIFETIME),
                    })
                    .await?;
                Ok::<_, carewatch_core::Error>(secret.token.to_string())
            }
        })
        .buffer_unordered(CONCURRENT_WRITES)
        .try_collect()
        .await?;

    // The server that starts next finds the fleet received until now.
    store
        .mark_alive(&LivenessMark {
            node: NODE_ID.to_owned(),
            at: SystemClock.now(),
            reason: MarkReason::Running,
            tolerance: Duration::from_secs(3),
        })
        .await?;
    drop(store);

    let count = |health| fleet.installations_with(health).count() as u64;
    let expected = Totals {
        healthy: count(SeededHealth::Healthy),
        pending: args.pending as u64,
        attention: count(SeededHealth::Attention),
        critical: count(SeededHealth::CriticalCondition) + count(SeededHealth::OneServerDown),
        offline: count(SeededHealth::Offline),
    };
    Ok(Seeded {
        fleet,
        reseller_token: reseller_token.token.to_string(),
        operator_token: operator_token.token.to_string(),
        keys,
        sessions,
        expected,
    })
}

/// The operator invites an admin over gRPC; the admin accepts on `/invite`
/// and signs in on `/login`, as in a browser. Returns the session secret.
pub(crate) async fn admin_sign_in(
    web: &mut carewatch_benches::web::Connection,
    grpc: Channel,
    seeded: &Seeded,
) -> Result<String, BoxError> {
    let bearer = Bearer::new(&seeded.operator_token).ok_or("unusable operator token")?;
    let invitation = AdminClient::with_interceptor(grpc, bearer)
        .invite_user(InviteUserRequest {
            reseller_id: seeded.fleet.reseller.to_string(),
            login: ADMIN_LOGIN.into(),
            name: "Bench Admin".into(),
            role: "admin".into(),
        })
        .await?
        .into_inner();

    let page = web.get("/invite", &[]).await?;
    let token = page
        .cookie(FORM_COOKIE)
        .ok_or("/invite set no form cookie")?;
    let accepted = web
        .fetch(
            http::Method::POST,
            "/invite",
            &[cookie_header(FORM_COOKIE, &token)],
            Some(form(&[
                (CSRF_FIELD, &token),
                ("code", &invitation.secret),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ])),
        )
        .await?;
    if accepted.status != StatusCode::SEE_OTHER || accepted.cookie(SESSION_COOKIE).is_none() {
        return Err(format!("accepting the invitation answered {}", accepted.status).into());
    }

    let page = web.get("/login", &[]).await?;
    let token = page
        .cookie(FORM_COOKIE)
        .ok_or("/login set no form cookie")?;
    let signed_in = web
        .fetch(
            http::Method::POST,
            "/login",
            &[cookie_header(FORM_COOKIE, &token)],
            Some(form(&[
                (CSRF_FIELD, &token),
                ("login", ADMIN_LOGIN),
                ("password", PASSWORD),
            ])),
        )
        .await?;
    let session = signed_in
        .cookie(SESSION_COOKIE)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("signing in answered {} without a session", signed_in.status))?;
    Ok(session)
}

/// The JSON list's totals must be the seeded fleet's.
pub(crate) async fn check_totals(
    web: &mut carewatch_benches::web::Connection,
    seeded: &Seeded,
) -> Result<(), BoxError> {
    let reply = web
        .get(
            "/api/v1/installations",
            &[bearer_header(&seeded.reseller_token)],
        )
        .await?;
    if reply.status != StatusCode::OK {
        return Err(format!("/api/v1/installations answered {}", reply.status).into());
    }
    let json: serde_json::Value = serde_json::from_slice(&reply.body)?;
    let totals = Totals::of_json(&json).ok_or("no totals in the JSON list")?;
    if totals != seeded.expected {
        return Err(format!(
            "the server shows {totals:?}; the seeded fleet is {:?}",
            seeded.expected
        )
        .into());
    }
    Ok(())
}
