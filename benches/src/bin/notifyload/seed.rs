//! The seeded data directory every run copies, and the webhook channel.

use super::*;

/// The seeded data directory every run copies.
pub(crate) struct Template {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) reseller: ResellerId,
    /// The outage fleet's installations and keys.
    pub(crate) outage: Vec<(Slc, InstallationKey)>,
    /// The ingest fleet's.
    pub(crate) ingest: Vec<(Slc, InstallationKey)>,
}

impl Template {
    /// A data directory holding the master key, a certificate and (on
    /// SQLite) the database: the reseller, every installation (consent, a
    /// year's subscription) and its key. On PostgreSQL every run populates
    /// a schema of its own ([`Template::populate`]).
    pub(crate) async fn seed(args: &Args) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        key_file::load_or_create(&dir.path().join(MASTER_KEY_FILE))?;
        TlsIdentity::self_signed_in(dir.path(), &[])?;
        let reseller = ResellerId::new("outage-reseller")?;
        let outage: Vec<(Slc, InstallationKey)> = (0..args.installations)
            .map(|n| Ok((Slc::new(&format!("OUT-{n:06}"))?, key())))
            .collect::<Result<_, BoxError>>()?;
        let ingest_installations = args
            .ingest_servers
            .div_ceil(INGEST_SERVERS_PER_INSTALLATION);
        let ingest: Vec<(Slc, InstallationKey)> = (0..ingest_installations)
            .map(|n| Ok((Slc::new(&format!("ING-{n:06}"))?, key())))
            .collect::<Result<_, BoxError>>()?;
        let template = Self {
            dir,
            reseller,
            outage,
            ingest,
        };
        if !args.postgres {
            let store = SqliteStore::open(template.dir.path().join(DATABASE)).await?;
            template.populate(&store).await?;
            // The last connection closes: SQLite checkpoints and removes the WAL.
            drop(store);
        }
        Ok(template)
    }

    /// Writes the reseller, every installation and its key into `store`.
    pub(crate) async fn populate(&self, store: &dyn Store) -> Result<(), BoxError> {
        let master_key = key_file::load(&self.dir.path().join(MASTER_KEY_FILE))?;
        let at = SystemClock.now();
        let token = auth::issue_token(&Principal::Reseller(self.reseller.clone()));
        store
            .create_reseller(
                &Reseller {
                    id: self.reseller.clone(),
                    name: "Outage Security".into(),
                    created_at: at,
                },
                &token.hash,
            )
            .await?;
        let product = Product::new("XProtect Corporate", "2016 R3")?;
        let (master_key, reseller, product) = (&master_key, &self.reseller, &product);
        futures::stream::iter(self.outage.iter().chain(&self.ingest))
            .map(Ok)
            .try_for_each_concurrent(CONCURRENT_WRITES, |(slc, key)| async move {
                store
                    .register_installation(&Installation {
                        slc: slc.clone(),
                        reseller: reseller.clone(),
                        product: product.clone(),
                        subscription_expires_at: Some(
                            at.saturating_add(Duration::from_secs(365 * 24 * 3600)),
                        ),
                        consent: true,
                        registered_at: at,
                    })
                    .await?;
                store
                    .add_installation_key(slc, &master_key.wrap(slc, key), at)
                    .await
            })
            .await?;
        Ok(())
    }

    /// A fresh copy in `to` (SQLite rebuilds its shared-memory index).
    pub(crate) fn copy_to(&self, to: &Path) -> Result<(), BoxError> {
        for entry in std::fs::read_dir(self.dir.path())? {
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_file() && !name.to_string_lossy().ends_with("-shm") {
                std::fs::copy(entry.path(), to.join(&name))?;
            }
        }
        Ok(())
    }

    pub(crate) fn outage_servers(&self) -> Result<Vec<SimServer>, BoxError> {
        let id = RecordingServerId::new("rs-1")?;
        Ok(self
            .outage
            .iter()
            .map(|(slc, key)| SimServer::new(slc.clone(), id.clone(), key.clone()))
            .collect())
    }

    pub(crate) fn ingest_servers(&self, count: usize) -> Result<Vec<SimServer>, BoxError> {
        let mut servers = Vec::with_capacity(count);
        for (slc, key) in &self.ingest {
            for n in 1..=INGEST_SERVERS_PER_INSTALLATION {
                if servers.len() == count {
                    break;
                }
                let id = RecordingServerId::new(&format!("rs-{n}"))?;
                servers.push(SimServer::new(slc.clone(), id, key.clone()));
            }
        }
        Ok(servers)
    }
}

pub(crate) fn key() -> InstallationKey {
    InstallationKey::generate(KeyId::new(1))
}

/// The webhook channel, created through the facade on a run's database
/// before its server starts (as an admin would on the web page).
pub(crate) async fn create_channel(
    dir: &Path,
    store: Arc<dyn Store>,
    reseller: &ResellerId,
    url: String,
    hold: Duration,
) -> Result<(), BoxError> {
    let master_key = key_file::load(&dir.join(MASTER_KEY_FILE))?;
    let carewatch = Carewatch::open(store, Arc::new(SystemClock), Config::new(master_key)).await?;
    let admin = User {
        reseller: reseller.clone(),
        login: Login::new("admin@outage.example")?,
        name: "Bench Admin".into(),
        role: Role::Admin,
        created_at: carewatch.now(),
    };
    let rules = ChannelRules {
        hold,
        ..ChannelRules::default()
    };
    carewatch
        .create_channel(
            &admin,
            "outage webhook",
            Destination::Webhook { url },
            rules,
        )
        .await?;
    Ok(())
}
