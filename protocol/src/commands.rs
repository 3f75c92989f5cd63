//! Wrapping sub-commands into `BaseCommand`, and small constructors for replies every server
//! sends. `BaseCommand::from(CommandPing {})` sets both the `type` and the matching field.

use crate::pulsar::base_command::Type;
use crate::pulsar::*;

macro_rules! base_command_from {
    ($($command:ty => $variant:ident, $field:ident;)*) => {
        $(
            impl From<$command> for BaseCommand {
                fn from(command: $command) -> BaseCommand {
                    BaseCommand {
                        r#type: Type::$variant as i32,
                        $field: Some(command),
                        ..Default::default()
                    }
                }
            }
        )*
    };
}

base_command_from! {
    CommandConnect => Connect, connect;
    CommandConnected => Connected, connected;
    CommandSubscribe => Subscribe, subscribe;
    CommandProducer => Producer, producer;
    CommandSend => Send, send;
    CommandSendReceipt => SendReceipt, send_receipt;
    CommandSendError => SendError, send_error;
    CommandMessage => Message, message;
    CommandAck => Ack, ack;
    CommandFlow => Flow, flow;
    CommandUnsubscribe => Unsubscribe, unsubscribe;
    CommandSuccess => Success, success;
    CommandError => Error, error;
    CommandCloseProducer => CloseProducer, close_producer;
    CommandCloseConsumer => CloseConsumer, close_consumer;
    CommandProducerSuccess => ProducerSuccess, producer_success;
    CommandPing => Ping, ping;
    CommandPong => Pong, pong;
    CommandRedeliverUnacknowledgedMessages => RedeliverUnacknowledgedMessages, redeliver_unacknowledged_messages;
    CommandPartitionedTopicMetadata => PartitionedMetadata, partition_metadata;
    CommandPartitionedTopicMetadataResponse => PartitionedMetadataResponse, partition_metadata_response;
    CommandLookupTopic => Lookup, lookup_topic;
    CommandLookupTopicResponse => LookupResponse, lookup_topic_response;
    CommandConsumerStats => ConsumerStats, consumer_stats;
    CommandConsumerStatsResponse => ConsumerStatsResponse, consumer_stats_response;
    CommandReachedEndOfTopic => ReachedEndOfTopic, reached_end_of_topic;
    CommandSeek => Seek, seek;
    CommandGetLastMessageId => GetLastMessageId, get_last_message_id;
    CommandGetLastMessageIdResponse => GetLastMessageIdResponse, get_last_message_id_response;
    CommandActiveConsumerChange => ActiveConsumerChange, active_consumer_change;
    CommandGetTopicsOfNamespace => GetTopicsOfNamespace, get_topics_of_namespace;
    CommandGetTopicsOfNamespaceResponse => GetTopicsOfNamespaceResponse, get_topics_of_namespace_response;
    CommandGetSchema => GetSchema, get_schema;
    CommandGetSchemaResponse => GetSchemaResponse, get_schema_response;
    CommandAuthChallenge => AuthChallenge, auth_challenge;
    CommandAuthResponse => AuthResponse, auth_response;
    CommandAckResponse => AckResponse, ack_response;
    CommandGetOrCreateSchema => GetOrCreateSchema, get_or_create_schema;
    CommandGetOrCreateSchemaResponse => GetOrCreateSchemaResponse, get_or_create_schema_response;
    CommandWatchTopicList => WatchTopicList, watch_topic_list;
    CommandWatchTopicListSuccess => WatchTopicListSuccess, watch_topic_list_success;
    CommandWatchTopicUpdate => WatchTopicUpdate, watch_topic_update;
    CommandWatchTopicListClose => WatchTopicListClose, watch_topic_list_close;
    CommandTopicMigrated => TopicMigrated, topic_migrated;
}

impl BaseCommand {
    /// The command's type, or `None` for a type number this protocol version does not know.
    pub fn kind(&self) -> Option<Type> {
        Type::try_from(self.r#type).ok()
    }

    /// The command's type name for logs and errors, e.g. `"PRODUCER"`, or `"UNKNOWN(99)"`.
    pub fn kind_name(&self) -> String {
        match self.kind() {
            Some(kind) => kind.as_str_name().to_string(),
            None => format!("UNKNOWN({})", self.r#type),
        }
    }
}

/// `ERROR` in reply to a request.
pub fn error(request_id: u64, error: ServerError, message: impl Into<String>) -> BaseCommand {
    CommandError {
        request_id,
        error: error as i32,
        message: message.into(),
    }
    .into()
}

/// `SUCCESS` in reply to a request.
pub fn success(request_id: u64) -> BaseCommand {
    CommandSuccess {
        request_id,
        schema: None,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn from_sets_type_and_matching_field_number() {
        let command = BaseCommand::from(CommandFlow {
            consumer_id: 7,
            message_permits: 1000,
        });
        assert_eq!(command.kind(), Some(Type::Flow));
        // Field number 11 (FLOW) with wire type 2 is tag byte 0x5a, right after the type field.
        let bytes = command.encode_to_vec();
        assert_eq!(&bytes[..3], &[0x08, 11, 0x5a]);
    }

    #[test]
    fn unknown_type_numbers_still_decode() {
        let bytes = [0x08, 99];
        let command = BaseCommand::decode(&bytes[..]).expect("unknown enum values are kept");
        assert_eq!(command.kind(), None);
        assert_eq!(command.kind_name(), "UNKNOWN(99)");
    }
}
