//! The topics of a namespace: GET_TOPICS_OF_NAMESPACE (polled by pattern consumers, filtered by
//! the broker when the client sends its pattern, answered "unchanged" when its hash still
//! holds) and topic-list watchers (WATCH_TOPIC_LIST: the client hears each matching topic
//! created or deleted, from a metadata watch, on any broker of the cluster). Both need a tenant
//! admin or a namespace-wide grant, as Pulsar.

use std::collections::BTreeSet;

use magnetar_admin_api::NamespaceName;
use magnetar_protocol::pulsar::command_get_topics_of_namespace::Mode;

use super::*;
use crate::topic_list::{self, TopicPattern, Update};

/// Watchers one connection may hold.
pub(super) const MAX_WATCHERS_PER_CONNECTION: usize = 64;

impl Connection {
    /// The namespace, if the role may list its topics; otherwise the error to answer.
    async fn topics_namespace(&self, namespace: &str) -> Result<NamespaceName, BrokerError> {
        let namespace = NamespaceName::parse(namespace).map_err(|e| {
            BrokerError::NotAllowed(format!("invalid namespace {namespace:?}: {e}"))
        })?;
        let admin = &self.service.ctx().admin;
        if admin.authorizer().is_enabled()
            && let Err(e) = admin
                .authorize_namespace_topics(self.auth.role.as_deref(), &namespace)
                .await
        {
            return Err(if e.status.is_server_error() {
                BrokerError::Metadata(e.reason)
            } else {
                BrokerError::AuthorizationError(e.reason)
            });
        }
        Ok(namespace)
    }

    pub(super) async fn topics_of_namespace(
        &mut self,
        request: CommandGetTopicsOfNamespace,
    ) -> Result<(), Closed> {
        let request_id = request.request_id;
        let namespace = match self.topics_namespace(&request.namespace).await {
            Ok(namespace) => namespace,
            Err(e) => return self.send_error(request_id, &e).await,
        };
        let pattern = match request.topics_pattern.as_deref().map(TopicPattern::new) {
            None => None,
            Some(Ok(pattern)) => Some(pattern),
            Some(Err(e)) => {
                return self
                    .send_error(request_id, &BrokerError::NotAllowed(e.to_string()))
                    .await;
            }
        };
        let namespace = namespace.to_string();
        let topics = match request.mode() {
            Mode::NonPersistent => self.service.np_topics_of_namespace(&namespace).await,
            Mode::Persistent => self.service.topics_of_namespace(&namespace).await,
            Mode::All => match self.service.topics_of_namespace(&namespace).await {
                Ok(mut topics) => {
                    self.service
                        .np_topics_of_namespace(&namespace)
                        .await
                        .map(|more| {
                            topics.extend(more);
                            topics
                        })
                }
                Err(e) => Err(e),
            },
        };
        let topics = match topics {
            Ok(topics) => topics,
            Err(e) => return self.send_error(request_id, &e).await,
        };
        let response = match pattern {
            None => CommandGetTopicsOfNamespaceResponse {
                request_id,
                topics,
                filtered: Some(false),
                topics_hash: None,
                changed: Some(true),
            },
            Some(pattern) => {
                let topics = pattern.filter(topics);
                let hash = topic_list::topics_hash(&topics);
                let changed = request.topics_hash.as_deref() != Some(hash.as_str());
                CommandGetTopicsOfNamespaceResponse {
                    request_id,
                    topics: if changed { topics } else { Vec::new() },
                    filtered: Some(true),
                    topics_hash: Some(hash),
                    changed: Some(changed),
                }
            }
        };
        self.send(response.into()).await
    }

    /// WATCH_TOPIC_LIST: answers with the matching topics, then sends WATCH_TOPIC_UPDATE for
    /// each change until WATCH_TOPIC_LIST_CLOSE or the connection closes.
    pub(super) async fn watch_topic_list(
        &mut self,
        request: CommandWatchTopicList,
    ) -> Result<(), Closed> {
        let request_id = request.request_id;
        let watcher_id = request.watcher_id;
        self.watchers.retain(|_, stop| !stop.is_cancelled());
        if self.watchers.contains_key(&watcher_id) {
            let error = BrokerError::NotAllowed(format!("watcher id {watcher_id} is in use"));
            return self.send_error(request_id, &error).await;
        }
        if self.watchers.len() >= MAX_WATCHERS_PER_CONNECTION {
            let error = BrokerError::NotAllowed(format!(
                "the connection holds {MAX_WATCHERS_PER_CONNECTION} topic-list watchers, the limit"
            ));
            return self.send_error(request_id, &error).await;
        }
        let namespace = match self.topics_namespace(&request.namespace).await {
            Ok(namespace) => namespace.to_string(),
            Err(e) => return self.send_error(request_id, &e).await,
        };
        let pattern = match TopicPattern::new(&request.topics_pattern) {
            Ok(pattern) => pattern,
            Err(e) => {
                return self
                    .send_error(request_id, &BrokerError::NotAllowed(e.to_string()))
                    .await;
            }
        };
        let stop = self.cancel.child_token();
        self.watchers.insert(watcher_id, stop.clone());
        let metadata = self.service.ctx().metadata.clone();
        let out = self.out.clone();
        // A non-persistent pattern follows the brokers' registry of loaded topics.
        let prefix = match topic_list::is_non_persistent_pattern(&request.topics_pattern) {
            true => topic_list::non_persistent_prefix(&namespace),
            false => topic_list::managed_ledgers_prefix(&namespace),
        };
        tokio::spawn(async move {
            let watched = start_watch(&metadata, &namespace, &prefix, &pattern).await;
            let (mut watch, mut known) = match watched {
                Ok(started) => started,
                Err(e) => {
                    stop.cancel();
                    let error = commands::error(request_id, e.code(), e.to_string());
                    let _ = out.send(Box::new(error.into())).await;
                    return;
                }
            };
            let success = CommandWatchTopicListSuccess {
                request_id,
                watcher_id,
                topics_hash: topic_list::topics_hash(&known),
                topic: known.iter().cloned().collect(),
            };
            if out.send(Box::new(success.into())).await.is_err() {
                return;
            }
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => return,
                    event = watch.next() => event,
                };
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(e)) => {
                        // The client's watcher reconnects with its hash and catches up.
                        tracing::info!(%namespace, %e, "topic-list watch ended");
                        stop.cancel();
                        let close = CommandWatchTopicListClose {
                            request_id: u64::MAX,
                            watcher_id,
                        };
                        let _ = out.send(Box::new(close.into())).await;
                        return;
                    }
                    None => return,
                };
                let changes = event.changes.iter().filter_map(|change| {
                    let topic = topic_list::topic_of_key(&namespace, &prefix, &change.record.key)?;
                    let created = change.kind == magnetar_metadata::EventKind::Put;
                    Some((topic, created))
                });
                let update = Update::apply(&mut known, &pattern, changes);
                if update.is_empty() {
                    continue;
                }
                let frame = CommandWatchTopicUpdate {
                    watcher_id,
                    new_topics: update.new_topics,
                    deleted_topics: update.deleted_topics,
                    topics_hash: topic_list::topics_hash(&known),
                };
                if out.send(Box::new(frame.into())).await.is_err() {
                    return;
                }
            }
        });
        Ok(())
    }

    pub(super) async fn close_topic_list_watcher(
        &mut self,
        request: CommandWatchTopicListClose,
    ) -> Result<(), Closed> {
        if let Some(stop) = self.watchers.remove(&request.watcher_id) {
            stop.cancel();
        }
        self.send(commands::success(request.request_id).into())
            .await
    }
}

/// The namespace's matching topics and a watch of every change after that listing.
async fn start_watch(
    metadata: &magnetar_metadata::MetadataClient,
    namespace: &str,
    prefix: &str,
    pattern: &TopicPattern,
) -> Result<(magnetar_metadata::Watch, BTreeSet<String>), BrokerError> {
    let (records, revision) = metadata.list_with_revision(prefix).await?;
    let known = records
        .iter()
        .filter_map(|r| topic_list::topic_of_key(namespace, prefix, &r.key))
        .filter(|t| pattern.matches(t))
        .collect();
    let watch = metadata.watch(prefix, revision + 1).await?;
    Ok((watch, known))
}
