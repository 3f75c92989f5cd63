//! Cluster membership and bundle ownership: what makes brokers stateless and interchangeable.
//!
//! - Every broker keeps one metadata session ([`SessionKeeper`]) and registers itself under
//!   `/loadbalance/brokers/{id}` (an ephemeral key: it goes when the session does).
//! - A namespace's hash space is cut into bundles ([`bundles`]); a broker owns a bundle through
//!   the ephemeral key `/namespace/{tenant}/{ns}/{0x…_0x…}` bound to its session, written only
//!   if absent and only if the namespace's boundaries are still the ones it computed from.
//! - Lookups ([`NamespaceService::lookup`]) answer Connect to the owner; an unowned bundle goes
//!   to the live broker with the fewest bundles ([`assign`]): this broker claims it, or redirects
//!   the client (authoritatively) to the chosen one, which must claim it itself — a broker never
//!   redirects an authoritative lookup, so there are no loops and no leader is needed.
//! - Every topic load passes [`NamespaceService::ensure_owned`] first: a broker that does not
//!   own a topic's bundle never opens its managed ledger.
//! - The session's local lease ends before the group can expire it; when it does, every owned
//!   bundle is given up at once (reported on the channel [`NamespaceService::start`] returns) so
//!   a broker cut off from the metadata service stops serving before another can claim.
//!
//! Safety does not rest on this alone: the managed ledger fences the previous owner's ledger on
//! the bookies before the new owner writes (see `managed_ledger::open`).

pub mod assign;
pub mod bundles;
pub mod shedding;
mod topic_policies;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use magnetar_metadata::{
    Expected, MetadataClient, MetadataError, PrefixCache, Session, SessionKeeper, Txn,
};
use magnetar_protocol::TopicName;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::BrokerError;
use crate::managed_ledger::OwnershipGuard;
pub use bundles::BundleName;
use bundles::{Bundles, parse_bundles};
use magnetar_admin_api::keys;

/// Live brokers: `/loadbalance/brokers/{broker id}` → [`BrokerData`]; bundle owners:
/// `/namespace/{tenant}/{ns}/{range}` → [`OwnerData`]; namespace policies (bundle boundaries
/// among them). All keys are in [`magnetar_admin_api::keys`].
pub use magnetar_admin_api::keys::{BROKERS_PREFIX, OWNERS_PREFIX, POLICIES_PREFIX};

pub use crate::records::{BrokerData, OwnerData};

/// What a lookup tells the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAnswer {
    /// Send PRODUCER/SUBSCRIBE to this broker (it owns the bundle).
    Connect(OwnerData),
    /// Look up again at this broker, authoritatively: it was chosen to own the bundle.
    Redirect(BrokerData),
}

impl LookupAnswer {
    pub fn is_local(&self, me: &str) -> bool {
        matches!(self, LookupAnswer::Connect(owner) if owner.broker_id == me)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    session: u64,
    unloading: bool,
    /// When this broker claimed it.
    since: Instant,
}

/// Settings of membership and ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The metadata session's TTL: how long after a broker dies its bundles can move
    /// (Pulsar's `metadataStoreSessionTimeoutMillis`, 30 s there; far shorter here so clients
    /// never wait out their 30 s send timeout).
    pub session_ttl: Duration,
}

impl Default for ClusterSettings {
    fn default() -> ClusterSettings {
        ClusterSettings {
            session_ttl: Duration::from_secs(4),
        }
    }
}

/// Bundles this broker no longer owns (its session went): their topics must unload.
pub type LostBundles = Vec<BundleName>;

/// Membership and ownership of one broker.
#[derive(Debug)]
pub struct NamespaceService {
    me: BrokerData,
    metadata: MetadataClient,
    sessions: SessionKeeper,
    brokers: PrefixCache,
    owners: PrefixCache,
    policies: PrefixCache,
    topic_policies: PrefixCache,
    parsed_bundles: bundles::ParsedBundles,
    held: Mutex<HashMap<BundleName, Held>>,
    lost: mpsc::UnboundedSender<LostBundles>,
    stop: CancellationToken,
}

impl NamespaceService {
    /// Opens a session, registers `me` and starts following brokers, owners and policies.
    pub async fn start(
        metadata: MetadataClient,
        me: BrokerData,
        settings: ClusterSettings,
    ) -> Result<(Arc<NamespaceService>, mpsc::UnboundedReceiver<LostBundles>), BrokerError> {
        let brokers = PrefixCache::start(metadata.clone(), BROKERS_PREFIX).await?;
        let owners = PrefixCache::start(metadata.clone(), OWNERS_PREFIX).await?;
        let policies = PrefixCache::start(metadata.clone(), POLICIES_PREFIX).await?;
        let topic_policies = PrefixCache::start(
            metadata.clone(),
            magnetar_admin_api::keys::TOPIC_POLICIES_PREFIX,
        )
        .await?;
        let sessions =
            SessionKeeper::start(metadata.clone(), settings.session_ttl, me.broker_id.clone());
        let (lost, lost_rx) = mpsc::unbounded_channel();
        let service = Arc::new(NamespaceService {
            me,
            metadata,
            sessions,
            brokers,
            owners,
            policies,
            topic_policies,
            parsed_bundles: Default::default(),
            held: Mutex::default(),
            lost,
            stop: CancellationToken::new(),
        });
        let session = service.sessions.wait().await;
        service.register(&session).await?;
        tokio::spawn(follow_sessions(
            Arc::downgrade(&service),
            service.stop.clone(),
        ));
        Ok((service, lost_rx))
    }

    pub fn broker_id(&self) -> &str {
        &self.me.broker_id
    }

    pub fn me(&self) -> &BrokerData {
        &self.me
    }

    pub fn metadata(&self) -> &MetadataClient {
        &self.metadata
    }

    async fn register(&self, session: &Session) -> Result<(), BrokerError> {
        let key = keys::broker(&self.me.broker_id);
        let value =
            serde_json::to_vec(&self.me).map_err(|e| BrokerError::Unknown(e.to_string()))?;
        self.metadata
            .put_ephemeral(&key, value, Expected::Any, session)
            .await?;
        tracing::info!(
            broker = self.me.broker_id,
            session = session.id(),
            "broker registered"
        );
        Ok(())
    }

    /// The bundles this broker holds, each with its session and whether it is being unloaded.
    fn held(&self) -> MutexGuard<'_, HashMap<BundleName, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Live brokers, in id order.
    pub fn live_brokers(&self) -> Vec<BrokerData> {
        self.brokers
            .records()
            .iter()
            .filter_map(|r| serde_json::from_slice(&r.value).ok())
            .collect()
    }

    /// The bundles of a namespace (`tenant/ns`), read from the watched policies, or from the
    /// group when the copy has not caught up with a namespace created a moment ago.
    pub async fn bundles(&self, namespace: &str) -> Result<(Bundles, u64), BrokerError> {
        let key = format!("{POLICIES_PREFIX}{namespace}");
        let record = match self.policies.get(&key) {
            Some(record) => record,
            None => self.metadata.get(&key).await?.ok_or_else(|| {
                BrokerError::TopicNotFound(format!("namespace {namespace} does not exist"))
            })?,
        };
        let bundles = self
            .parsed_bundles
            .get(&key, record.mod_revision, &record.value)?;
        Ok((bundles, record.version))
    }

    /// A namespace's policies (`tenant/ns`), from the watched copy or the group.
    pub async fn policies(
        &self,
        namespace: &str,
    ) -> Result<Option<magnetar_admin_api::models::Policies>, BrokerError> {
        let key = format!("{POLICIES_PREFIX}{namespace}");
        let record = match self.policies.get(&key) {
            Some(record) => Some(record),
            None => self.metadata.get(&key).await?,
        };
        record
            .map(|r| {
                serde_json::from_slice(&r.value).map_err(|e| {
                    BrokerError::Metadata(format!("unreadable policies of {namespace}: {e}"))
                })
            })
            .transpose()
    }

    /// The bundle of a topic.
    pub async fn bundle_of(&self, topic: &TopicName) -> Result<BundleName, BrokerError> {
        let namespace = format!("{}/{}", topic.tenant(), topic.namespace_local());
        let (bundles, _) = self.bundles(&namespace).await?;
        let canonical = format!(
            "{}://{namespace}/{}",
            topic.domain().as_str(),
            topic.local_name()
        );
        Ok(BundleName {
            range: bundles.of_topic(&canonical),
            namespace,
        })
    }

    /// The live session, if the local lease holds.
    fn session(&self) -> Option<Arc<Session>> {
        self.sessions.current()
    }

    /// Writes a key that goes with this broker's session (a non-persistent topic's entry).
    pub async fn put_ephemeral(&self, key: &str, value: Vec<u8>) -> Result<(), BrokerError> {
        let session = self.session().ok_or_else(|| {
            BrokerError::ServiceNotReady("the broker's metadata session is not live".into())
        })?;
        self.metadata
            .put_ephemeral(key, value, Expected::Any, &session)
            .await?;
        Ok(())
    }

    /// Whether this broker serves the bundle now.
    fn serving(&self, bundle: &BundleName) -> Result<bool, BrokerError> {
        let Some(held) = self.held().get(bundle).copied() else {
            return Ok(false);
        };
        if held.unloading {
            return Err(BrokerError::ServiceNotReady(format!(
                "Namespace bundle {} is being unloaded",
                bundle.name()
            )));
        }
        Ok(self.session().is_some_and(|s| s.id() == held.session))
    }

    /// The owner's record of a bundle from the watched copy (`None`: unowned).
    fn cached_owner(&self, bundle: &BundleName) -> Option<OwnerData> {
        let record = self.owners.get(&bundle.key())?;
        serde_json::from_slice(&record.value).ok()
    }

    /// Answers a lookup of `topic`: the owner, or the broker chosen to own it.
    pub async fn lookup(
        &self,
        topic: &TopicName,
        authoritative: bool,
    ) -> Result<LookupAnswer, BrokerError> {
        let bundle = self.bundle_of(topic).await?;
        if self.serving(&bundle)? {
            return Ok(LookupAnswer::Connect(OwnerData::of(&self.me)));
        }
        if let Some(owner) = self.cached_owner(&bundle) {
            // A record of ours that this broker no longer holds is a leftover of an expired
            // session, about to go: claiming below finds out.
            if owner.broker_id != self.me.broker_id {
                return Ok(LookupAnswer::Connect(owner));
            }
        }
        if !authoritative {
            let live = self.live_brokers();
            let counts = self.owned_counts();
            let candidates: Vec<assign::Candidate<'_>> = live
                .iter()
                .map(|b| assign::Candidate {
                    broker_id: &b.broker_id,
                    owned_bundles: counts.get(&b.broker_id).copied().unwrap_or(0),
                })
                .collect();
            let chosen = assign::choose(&bundle.name(), &candidates)
                .unwrap_or(self.me.broker_id.as_str())
                .to_string();
            if chosen != self.me.broker_id
                && let Some(target) = live.into_iter().find(|b| b.broker_id == chosen)
            {
                return Ok(LookupAnswer::Redirect(target));
            }
        }
        self.claim(&bundle).await.map(LookupAnswer::Connect)
    }

    /// Owned bundles per broker id, from the watched owners.
    fn owned_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for record in self.owners.records() {
            if let Ok(owner) = serde_json::from_slice::<OwnerData>(&record.value) {
                *counts.entry(owner.broker_id).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Takes the bundle for this broker unless someone holds it; answers the owner either way.
    async fn claim(&self, bundle: &BundleName) -> Result<OwnerData, BrokerError> {
        let session = self.session().ok_or_else(|| {
            BrokerError::ServiceNotReady(format!(
                "Failed to acquire ownership for namespace bundle {}: this broker has no metadata session",
                bundle.name()
            ))
        })?;
        let policies_key = format!("{POLICIES_PREFIX}{}", bundle.namespace);
        for _ in 0..3 {
            let (bundles, policies_version) = self.bundles(&bundle.namespace).await?;
            if !bundles.contains(bundle.range) {
                return Err(BrokerError::ServiceNotReady(format!(
                    "Failed to acquire ownership for namespace bundle {}: the namespace's bundles changed",
                    bundle.name()
                )));
            }
            let owner = OwnerData::of(&self.me);
            let value =
                serde_json::to_vec(&owner).map_err(|e| BrokerError::Unknown(e.to_string()))?;
            let txn = Txn::new()
                .compare(policies_key.clone(), Expected::Version(policies_version))
                .put_ephemeral(bundle.key(), value, Expected::Absent, &session);
            match self.metadata.txn(txn).await {
                Ok(_) => {
                    record_claim(&mut self.held(), bundle, session.id());
                    tracing::info!(bundle = bundle.name(), "bundle owned");
                    return Ok(owner);
                }
                Err(MetadataError::BadVersion { key, .. }) if key == policies_key => {
                    // The boundaries moved (a split); read them again.
                    let _ = self.metadata.get(&policies_key).await?;
                    continue;
                }
                Err(MetadataError::BadVersion { .. }) | Err(MetadataError::Indeterminate(_)) => {
                    return self.current_owner(bundle, &session).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::ServiceNotReady(format!(
            "Failed to acquire ownership for namespace bundle {}: its boundaries keep changing",
            bundle.name()
        )))
    }

    /// After a claim lost a race (or its outcome is unknown): who holds the bundle.
    async fn current_owner(
        &self,
        bundle: &BundleName,
        session: &Session,
    ) -> Result<OwnerData, BrokerError> {
        let record = self.metadata.get(&bundle.key()).await?;
        match record {
            Some(record) if record.session == Some(session.id()) => {
                record_claim(&mut self.held(), bundle, session.id());
                serde_json::from_slice(&record.value)
                    .map_err(|e| BrokerError::Unknown(e.to_string()))
            }
            Some(record) => {
                let owner: OwnerData = serde_json::from_slice(&record.value)
                    .map_err(|e| BrokerError::Unknown(e.to_string()))?;
                if owner.broker_id != self.me.broker_id {
                    return Ok(owner);
                }
                // Left by an earlier life of this same broker (a restart on the same address,
                // or a session that ran out locally): no one else can be serving through it,
                // so take it over, as Pulsar lets a restarted broker with the same advertised
                // data do — only if it is still that old session's.
                let Some(old) = record.session else {
                    return Err(BrokerError::ServiceNotReady(format!(
                        "Failed to acquire ownership for namespace bundle {}: its record is not ephemeral",
                        bundle.name()
                    )));
                };
                let mine = OwnerData::of(&self.me);
                let value =
                    serde_json::to_vec(&mine).map_err(|e| BrokerError::Unknown(e.to_string()))?;
                let txn = Txn::new()
                    .compare(bundle.key(), Expected::Session(old))
                    .put_ephemeral(bundle.key(), value, Expected::Any, session);
                match self.metadata.txn(txn).await {
                    Ok(_) => {
                        record_claim(&mut self.held(), bundle, session.id());
                        tracing::info!(
                            bundle = bundle.name(),
                            old_session = old,
                            "bundle taken over from this broker's previous session"
                        );
                        Ok(mine)
                    }
                    Err(e) => Err(BrokerError::ServiceNotReady(format!(
                        "Failed to acquire ownership for namespace bundle {}: {e}",
                        bundle.name()
                    ))),
                }
            }
            None => Err(BrokerError::ServiceNotReady(format!(
                "Failed to acquire ownership for namespace bundle {}: try again",
                bundle.name()
            ))),
        }
    }

    /// The ownership gate of every topic load: Ok when this broker serves the topic's bundle,
    /// claiming an unowned bundle for a client that skipped the lookup; otherwise the error
    /// that makes clients look up again (never `TopicNotFound`).
    pub async fn ensure_owned(&self, topic: &TopicName) -> Result<BundleName, BrokerError> {
        let bundle = self.bundle_of(topic).await?;
        if self.serving(&bundle)? {
            return Ok(bundle);
        }
        let owner = self.claim(&bundle).await?;
        if owner.broker_id == self.me.broker_id && self.serving(&bundle)? {
            return Ok(bundle);
        }
        Err(BrokerError::NotOwner {
            message: format!(
                "Namespace bundle for topic ({topic}) not served by this instance:{}. Please redo the lookup. Request is denied: namespace={}",
                self.me.broker_id, bundle.namespace
            ),
            owner: Box::new(owner),
        })
    }

    /// The guard a topic of `bundle` writes its managed ledger under: this broker's ownership
    /// record and the session holding it. `None` when this broker does not serve the bundle.
    pub fn ownership_guard(&self, bundle: &BundleName) -> Option<OwnershipGuard> {
        if !self.serving(bundle).unwrap_or(false) {
            return None;
        }
        let held = self.held().get(bundle).copied()?;
        Some(OwnershipGuard {
            key: bundle.key(),
            session: held.session,
        })
    }

    /// Whether this broker still serves the bundle (checked again after a slow load).
    pub fn still_serving(&self, bundle: &BundleName) -> bool {
        self.serving(bundle).unwrap_or(false)
    }

    /// Bundles this broker holds now.
    pub fn owned_bundles(&self) -> Vec<BundleName> {
        let mut owned: Vec<BundleName> = self.held().keys().cloned().collect();
        owned.sort_by_key(|b| b.name());
        owned
    }

    /// Bundles this broker holds and is not unloading, with when it claimed each.
    pub fn held_since(&self) -> Vec<(BundleName, Instant)> {
        self.held()
            .iter()
            .filter(|(_, h)| !h.unloading)
            .map(|(b, h)| (b.clone(), h.since))
            .collect()
    }

    /// Bundles owned by each live broker (this one included; brokers owning none count 0).
    pub fn bundle_counts(&self) -> HashMap<String, usize> {
        let mut counts: HashMap<String, usize> = self
            .live_brokers()
            .into_iter()
            .map(|b| (b.broker_id, 0))
            .collect();
        for (_, owner) in self.all_owners() {
            if let Some(n) = counts.get_mut(&owner.broker_id) {
                *n += 1;
            }
        }
        counts
    }

    /// Every owned bundle of the cluster with its owner, from the watched copy.
    pub fn all_owners(&self) -> Vec<(BundleName, OwnerData)> {
        self.owners
            .records()
            .iter()
            .filter_map(|r| {
                Some((
                    BundleName::from_key(&r.key)?,
                    serde_json::from_slice(&r.value).ok()?,
                ))
            })
            .collect()
    }

    /// The owner of a bundle if someone holds it (this broker included).
    pub fn owner_of(&self, bundle: &BundleName) -> Option<OwnerData> {
        if self.serving(bundle).unwrap_or(false) {
            return Some(OwnerData::of(&self.me));
        }
        self.cached_owner(bundle)
    }

    /// First step of an unload: lookups and loads of the bundle are refused from now on.
    /// False when this broker does not hold it.
    pub fn begin_unload(&self, bundle: &BundleName) -> bool {
        match self.held().get_mut(bundle) {
            Some(held) => {
                held.unloading = true;
                true
            }
            None => false,
        }
    }

    /// Last step of an unload: deletes the ownership record (if still this session's).
    pub async fn release(&self, bundle: &BundleName) {
        let held = self.held().remove(bundle);
        let Some(held) = held else { return };
        match self
            .metadata
            .delete(&bundle.key(), Expected::Session(held.session))
            .await
        {
            Ok(_) => tracing::info!(bundle = bundle.name(), "bundle released"),
            Err(e) => {
                tracing::warn!(bundle = bundle.name(), error = %e, "releasing a bundle failed; it goes with the session")
            }
        }
    }

    /// Writes new boundaries for a namespace (a split of `range`), conditional on the version
    /// they were computed from.
    pub async fn split(&self, bundle: &BundleName) -> Result<Bundles, BrokerError> {
        let key = format!("{POLICIES_PREFIX}{}", bundle.namespace);
        let record = self.metadata.get(&key).await?.ok_or_else(|| {
            BrokerError::TopicNotFound(format!("namespace {} does not exist", bundle.namespace))
        })?;
        let bundles = parse_bundles(&record.value)?;
        let split = bundles
            .split(bundle.range)
            .map_err(|e| BrokerError::NotAllowed(e.to_string()))?;
        let mut policies: serde_json::Value = serde_json::from_slice(&record.value)
            .map_err(|e| BrokerError::Metadata(format!("unreadable policies {key}: {e}")))?;
        policies["bundles"] = serde_json::json!({
            "boundaries": split.boundaries_hex(),
            "numBundles": split.len(),
        });
        let value =
            serde_json::to_vec(&policies).map_err(|e| BrokerError::Unknown(e.to_string()))?;
        self.metadata
            .put(&key, value, Expected::Version(record.version))
            .await
            .map_err(|e| match e {
                MetadataError::BadVersion { .. } => BrokerError::ServiceNotReady(
                    "the namespace's policies changed meanwhile; try again".into(),
                ),
                other => other.into(),
            })?;
        Ok(split)
    }

    /// Leaves the session to expire, as a crash would (in-process failover tests).
    pub fn abandon(&self) {
        self.stop.cancel();
        self.held().clear();
        self.sessions.abandon();
    }

    /// Stops following sessions and closes the session: every ephemeral key of this broker
    /// (registration, leftover ownership) goes at once.
    pub async fn close(&self) {
        self.stop.cancel();
        self.held().clear();
        self.sessions.close().await;
    }
}

/// Re-registers on every new session and gives up what the previous one held.
async fn follow_sessions(service: std::sync::Weak<NamespaceService>, stop: CancellationToken) {
    let Some(mut changes) = service.upgrade().map(|s| s.sessions.subscribe()) else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        let current = changes.borrow_and_update().clone();
        let Some(service) = service.upgrade() else {
            return;
        };
        let live = current.as_ref().map(|s| s.id());
        let lost: LostBundles = {
            let mut held = service.held();
            let lost: Vec<BundleName> = held
                .iter()
                .filter(|(_, h)| Some(h.session) != live)
                .map(|(b, _)| b.clone())
                .collect();
            for bundle in &lost {
                held.remove(bundle);
            }
            lost
        };
        if !lost.is_empty() {
            tracing::warn!(
                bundles = lost.len(),
                "metadata session lost: giving up every owned bundle"
            );
            let _ = service.lost.send(lost);
        }
        if let Some(session) = current {
            let mut retry = Duration::from_millis(100);
            while let Err(e) = service.register(&session).await {
                if !session.is_live() || stop.is_cancelled() {
                    break;
                }
                tracing::warn!(error = %e, "registering the broker failed; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Records a claim. A bundle this session holds keeps its state: a claim that lost a race to this
/// broker's own must not undo an unload under way (topics would load into a bundle handed over).
fn record_claim(held: &mut HashMap<BundleName, Held>, bundle: &BundleName, session: u64) {
    if held.get(bundle).is_none_or(|h| h.session != session) {
        let claim = Held {
            session,
            unloading: false,
            since: Instant::now(),
        };
        held.insert(bundle.clone(), claim);
    }
}

#[cfg(test)]
mod tests {
    use super::bundles::BundleRange;
    use super::*;

    #[test]
    fn a_raced_claim_does_not_undo_an_unload() {
        let bundle = BundleName::from_key("/namespace/public/default/0x00000000_0xffffffff");
        let bundle = bundle.expect("a bundle key");
        let mut held = HashMap::new();
        record_claim(&mut held, &bundle, 7);
        held.get_mut(&bundle).expect("held").unloading = true;
        record_claim(&mut held, &bundle, 7);
        assert!(
            held[&bundle].unloading,
            "the same session's second claim kept the unload"
        );
        record_claim(&mut held, &bundle, 8);
        assert!(
            !held[&bundle].unloading,
            "a new session's claim starts afresh"
        );
    }

    #[test]
    fn ownership_keys_round_trip() {
        let bundle = BundleName {
            namespace: "public/default".into(),
            range: BundleRange {
                lower: 0x4000_0000,
                upper: 0x8000_0000,
            },
        };
        assert_eq!(
            bundle.key(),
            "/namespace/public/default/0x40000000_0x80000000"
        );
        assert_eq!(bundle.name(), "public/default/0x40000000_0x80000000");
        assert_eq!(BundleName::from_key(&bundle.key()), Some(bundle));
        assert_eq!(BundleName::from_key("/namespace/x"), None);
    }
}
