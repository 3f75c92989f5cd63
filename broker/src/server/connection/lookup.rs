//! Topic discovery on a connection: partitioned metadata, lookup and schemas (the topics of a
//! namespace are in `topic_list`). Each is authorized as Pulsar does: lookup, partitioned
//! metadata and GET_SCHEMA need a role that may produce or consume on the topic, and
//! GET_OR_CREATE_SCHEMA one that may produce.

use super::*;
use crate::cluster::LookupAnswer;

// Ownership failures carry Pulsar's phrases ("Failed to acquire ownership", "is being
// unloaded"): the C++ client keeps its connection on a ServiceNotReady that says them.

impl Connection {
    pub(super) async fn partitioned_metadata(
        &mut self,
        request: CommandPartitionedTopicMetadata,
    ) -> Result<(), Closed> {
        let request_id = request.request_id;
        let result = match TopicName::parse(&request.topic) {
            Err(e) => Err(BrokerError::InvalidTopicName(e.to_string())),
            Ok(topic) => match self.authorize(&topic, TopicOperation::Lookup).await {
                Ok(()) => self.service.partitions(&topic).await,
                Err(e) => Err(e),
            },
        };
        let response = match result {
            Ok(partitions) => CommandPartitionedTopicMetadataResponse {
                partitions: Some(partitions),
                request_id,
                response: Some(MetadataResult::Success as i32),
                ..Default::default()
            },
            Err(e) => CommandPartitionedTopicMetadataResponse {
                partitions: Some(0),
                request_id,
                response: Some(MetadataResult::Failed as i32),
                error: Some(e.code() as i32),
                message: Some(e.to_string()),
            },
        };
        self.send(response.into()).await
    }

    pub(super) async fn lookup(&mut self, request: CommandLookupTopic) -> Result<(), Closed> {
        let authoritative = request.authoritative.unwrap_or(false);
        let answer = match TopicName::parse(&request.topic) {
            Ok(topic) => match self.authorize(&topic, TopicOperation::Lookup).await {
                Ok(()) => self
                    .service
                    .ctx()
                    .namespaces
                    .lookup(&topic, authoritative)
                    .await
                    .map_err(|e| (e.code(), e.to_string())),
                Err(e) => Err((e.code(), e.to_string())),
            },
            Err(e) => Err((ServerError::InvalidTopicName, e.to_string())),
        };
        let response = match answer {
            // Any broker that knows the owner answers Connect (no extra hop).
            Ok(LookupAnswer::Connect(owner)) => CommandLookupTopicResponse {
                broker_service_url: Some(owner.native_url),
                broker_service_url_tls: owner.native_url_tls,
                response: Some(LookupType::Connect as i32),
                request_id: request.request_id,
                authoritative: Some(true),
                ..Default::default()
            },
            // The chosen broker must take the bundle: it gets the lookup authoritatively and
            // never redirects it again.
            Ok(LookupAnswer::Redirect(target)) => CommandLookupTopicResponse {
                broker_service_url: Some(target.pulsar_service_url),
                broker_service_url_tls: target.pulsar_service_url_tls,
                response: Some(LookupType::Redirect as i32),
                request_id: request.request_id,
                authoritative: Some(true),
                ..Default::default()
            },
            Err((code, message)) => CommandLookupTopicResponse {
                response: Some(LookupType::Failed as i32),
                request_id: request.request_id,
                error: Some(code as i32),
                message: Some(message),
                ..Default::default()
            },
        };
        self.send(response.into()).await
    }

    pub(super) async fn get_schema(&mut self, request: CommandGetSchema) -> Result<(), Closed> {
        let mut response = CommandGetSchemaResponse {
            request_id: request.request_id,
            ..Default::default()
        };
        let found = match TopicName::parse(&request.topic) {
            Ok(topic) => match self.authorize(&topic, TopicOperation::Lookup).await {
                Ok(()) => {
                    schema::get(
                        self.service.ctx(),
                        &topic,
                        request.schema_version.as_deref(),
                    )
                    .await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(BrokerError::InvalidTopicName(e.to_string())),
        };
        match found {
            Ok(Some((stored, version))) => {
                response.schema = Some(stored);
                response.schema_version = Some(schema::version_bytes(version));
            }
            // C++ treats TopicNotFound here as "no schema", quietly.
            Ok(None) => {
                response.error_code = Some(ServerError::TopicNotFound as i32);
                response.error_message = Some("the topic has no schema".into());
            }
            Err(e) => {
                response.error_code = Some(e.code() as i32);
                response.error_message = Some(e.to_string());
            }
        }
        self.send(response.into()).await
    }

    /// Registers a schema (as a producer with a schema does): only for a role that may produce,
    /// on a topic this broker serves (loaded, or created where auto-creation allows).
    pub(super) async fn get_or_create_schema(
        &mut self,
        request: CommandGetOrCreateSchema,
    ) -> Result<(), Closed> {
        let request_id = request.request_id;
        let topic = match TopicName::parse(&request.topic) {
            Ok(topic) => topic,
            Err(e) => {
                let error = BrokerError::InvalidTopicName(e.to_string());
                return self.send(schema_error(request_id, &error).into()).await;
            }
        };
        if let Err(e) = self.authorize(&topic, TopicOperation::Produce).await {
            return self.send(schema_error(request_id, &e).into()).await;
        }
        let service = self.service.clone();
        let out = self.out.clone();
        let slot = self.background_slot().await;
        tokio::spawn(async move {
            let _slot = slot;
            let result = async {
                let loaded = service.topic(&topic, true).await?;
                schema::get_or_create(service.ctx(), loaded.name(), &request.schema).await
            }
            .await;
            let response = match result {
                Ok(version) => CommandGetOrCreateSchemaResponse {
                    request_id,
                    schema_version: Some(schema::version_bytes(version)),
                    ..Default::default()
                },
                Err(e) => schema_error(request_id, &e),
            };
            let _ = out.send(Box::new(response.into())).await;
        });
        Ok(())
    }
}

fn schema_error(request_id: u64, error: &BrokerError) -> CommandGetOrCreateSchemaResponse {
    CommandGetOrCreateSchemaResponse {
        request_id,
        error_code: Some(error.code() as i32),
        error_message: Some(error.to_string()),
        ..Default::default()
    }
}
