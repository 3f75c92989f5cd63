#!/usr/bin/env python3
"""Capture golden Pulsar frames sent by the real Python `pulsar-client` (C++ client inside).

A tiny fake broker listens on 127.0.0.1 (ephemeral port), records every frame the client
sends as exact raw bytes (including the leading u32 totalSize) and answers just enough
for the client to proceed.  The script drives the client through a few scenarios and
writes one `<kind>.bin` file per captured frame kind plus `manifest.json` next to itself.

Everything (protobuf encode/decode, CRC32C, LZ4/Snappy block decoders used for checking)
is hand-written so that only `pulsar-client` needs to be installed.

Usage:  python capture.py [--out DIR] [--runs N]
With --runs 2 (the default) the whole capture runs twice and the manifest lists, for
every file, which decoded fields differ between the runs (e.g. publish_time).
"""

import argparse
import hashlib
import json
import logging
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib

TOPIC = "persistent://public/default/golden"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
PRODUCER_NAME = "standalone-0-1"          # name the fake broker assigns to producers
SERVER_VERSION = "Magnetar-golden-capture"
MAX_MESSAGE_SIZE = 5242880
LEDGER_ID = 10                              # ledger used in SEND_RECEIPT / MESSAGE ids
PUSHED_PUBLISH_TIME = 1700000000000         # fixed publish_time in MESSAGE frames we push
MESSAGES_PER_FLOW = 2                       # MESSAGE frames pushed on a consumer's first FLOW

# ----------------------------------------------------------------------------------------
# Command type numbers (BaseCommand.type; sub-command field number == type number)
# ----------------------------------------------------------------------------------------
TYPES = {
    2: "CONNECT", 3: "CONNECTED", 4: "SUBSCRIBE", 5: "PRODUCER", 6: "SEND", 7: "SEND_RECEIPT",
    8: "SEND_ERROR", 9: "MESSAGE", 10: "ACK", 11: "FLOW", 12: "UNSUBSCRIBE", 13: "SUCCESS",
    14: "ERROR", 15: "CLOSE_PRODUCER", 16: "CLOSE_CONSUMER", 17: "PRODUCER_SUCCESS", 18: "PING",
    19: "PONG", 20: "REDELIVER_UNACKNOWLEDGED_MESSAGES", 21: "PARTITIONED_METADATA",
    22: "PARTITIONED_METADATA_RESPONSE", 23: "LOOKUP", 24: "LOOKUP_RESPONSE", 25: "CONSUMER_STATS",
    26: "CONSUMER_STATS_RESPONSE", 27: "REACHED_END_OF_TOPIC", 28: "SEEK", 29: "GET_LAST_MESSAGE_ID",
    30: "GET_LAST_MESSAGE_ID_RESPONSE", 31: "ACTIVE_CONSUMER_CHANGE", 32: "GET_TOPICS_OF_NAMESPACE",
    33: "GET_TOPICS_OF_NAMESPACE_RESPONSE", 34: "GET_SCHEMA", 35: "GET_SCHEMA_RESPONSE",
    36: "AUTH_CHALLENGE", 37: "AUTH_RESPONSE", 38: "ACK_RESPONSE",
}
T = {name: num for num, name in TYPES.items()}

# ----------------------------------------------------------------------------------------
# Protobuf encoding (proto2, by hand)
# ----------------------------------------------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1                      # negative int32/int64 -> 10-byte two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, n):
    return varint(field << 3 | 0) + varint(n)


def f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def f_msg(field, *parts):
    return f_bytes(field, b"".join(parts))


def command(type_num, *sub_fields):
    """BaseCommand{type=1, <sub-command>=type_num}."""
    return f_varint(1, type_num) + f_msg(type_num, *sub_fields)


def simple_frame(cmd):
    return struct.pack(">II", 4 + len(cmd), len(cmd)) + cmd


def payload_frame(cmd, metadata, payload):
    body = struct.pack(">I", len(metadata)) + metadata + payload
    rest = b"\x0e\x01" + struct.pack(">I", crc32c(body)) + body
    return struct.pack(">II", 4 + len(cmd) + len(rest), len(cmd)) + cmd + rest

# ----------------------------------------------------------------------------------------
# CRC32C (Castagnoli, reflected poly 0x82F63B78)
# ----------------------------------------------------------------------------------------

def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # standard check value

# ----------------------------------------------------------------------------------------
# Protobuf decoding
# ----------------------------------------------------------------------------------------

def read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def raw_fields(buf):
    """List of (field_number, wire_type, value) in wire order."""
    out, i = [], 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 1:
            v, i = struct.unpack_from("<Q", buf, i)[0], i + 8
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = bytes(buf[i:i + n]), i + n
        elif wt == 5:
            v, i = struct.unpack_from("<I", buf, i)[0], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        out.append((field, wt, v))
    return out


def get(buf, field, default=None):
    """First value of `field` in a protobuf message (raw)."""
    for f, _, v in raw_fields(buf):
        if f == field:
            return v
    return default


# Schemas: message -> {field: (name, type)}; a type ending in '*' is repeated.
# Scalar types: u (unsigned varint), i64/i32 (signed), b (bool), s (string), y (bytes),
# E:<Enum>; anything else names another message schema.
ENUMS = {
    "Type": TYPES,
    "AuthMethod": {0: "AuthMethodNone", 1: "AuthMethodYcaV1", 2: "AuthMethodAthens"},
    "SubType": {0: "Exclusive", 1: "Shared", 2: "Failover", 3: "Key_Shared"},
    "InitialPosition": {0: "Latest", 1: "Earliest"},
    "AckType": {0: "Individual", 1: "Cumulative"},
    "CompressionType": {0: "NONE", 1: "LZ4", 2: "ZLIB", 3: "ZSTD", 4: "SNAPPY"},
    "ProducerAccessMode": {0: "Shared", 1: "Exclusive", 2: "WaitForExclusive", 3: "ExclusiveWithFencing"},
    "KeySharedMode": {0: "AUTO_SPLIT", 1: "STICKY"},
    "SchemaType": {0: "None", 1: "String", 2: "Json", 3: "Protobuf", 4: "Avro"},
}

BASE_FIELDS = {
    1: ("type", "E:Type"), 2: ("connect", "CommandConnect"), 4: ("subscribe", "CommandSubscribe"),
    5: ("producer", "CommandProducer"), 6: ("send", "CommandSend"), 10: ("ack", "CommandAck"),
    11: ("flow", "CommandFlow"), 12: ("unsubscribe", "CommandUnsubscribe"),
    15: ("close_producer", "CommandCloseProducer"), 16: ("close_consumer", "CommandCloseConsumer"),
    18: ("ping", "Empty"), 19: ("pong", "Empty"),
    20: ("redeliverUnacknowledgedMessages", "CommandRedeliver"),
    21: ("partitionMetadata", "CommandPartitionedTopicMetadata"), 23: ("lookupTopic", "CommandLookupTopic"),
    25: ("consumerStats", "CommandConsumerStats"), 29: ("getLastMessageId", "CommandGetLastMessageId"),
    34: ("getSchema", "CommandGetSchema"), 37: ("authResponse", "CommandAuthResponse"),
}

SCHEMAS = {
    "BaseCommand": BASE_FIELDS,
    "Empty": {},
    "KeyValue": {1: ("key", "s"), 2: ("value", "s")},
    "IntRange": {1: ("start", "i32"), 2: ("end", "i32")},
    "AuthData": {1: ("auth_method_name", "s"), 2: ("auth_data", "y")},
    "Schema": {1: ("name", "s"), 3: ("schema_data", "y"), 4: ("type", "E:SchemaType"), 5: ("properties", "KeyValue*")},
    "MessageIdData": {1: ("ledgerId", "u"), 2: ("entryId", "u"), 3: ("partition", "i32"), 4: ("batch_index", "i32"),
                      5: ("ack_set", "i64*"), 6: ("batch_size", "i32"), 7: ("first_chunk_message_id", "MessageIdData")},
    "FeatureFlags": {1: ("supports_auth_refresh", "b"), 2: ("supports_broker_entry_metadata", "b"),
                     3: ("supports_partial_producer", "b"), 4: ("supports_topic_watchers", "b")},
    "CommandConnect": {1: ("client_version", "s"), 2: ("auth_method", "E:AuthMethod"), 3: ("auth_data", "y"),
                       4: ("protocol_version", "i32"), 5: ("auth_method_name", "s"), 6: ("proxy_to_broker_url", "s"),
                       7: ("original_principal", "s"), 8: ("original_auth_data", "s"), 9: ("original_auth_method", "s"),
                       10: ("feature_flags", "FeatureFlags")},
    "CommandPartitionedTopicMetadata": {1: ("topic", "s"), 2: ("request_id", "u"), 3: ("original_principal", "s"),
                                        4: ("original_auth_data", "s"), 5: ("original_auth_method", "s")},
    "CommandLookupTopic": {1: ("topic", "s"), 2: ("request_id", "u"), 3: ("authoritative", "b"),
                           4: ("original_principal", "s"), 5: ("original_auth_data", "s"),
                           6: ("original_auth_method", "s"), 7: ("advertised_listener_name", "s")},
    "CommandProducer": {1: ("topic", "s"), 2: ("producer_id", "u"), 3: ("request_id", "u"), 4: ("producer_name", "s"),
                        5: ("encrypted", "b"), 6: ("metadata", "KeyValue*"), 7: ("schema", "Schema"), 8: ("epoch", "u"),
                        9: ("user_provided_producer_name", "b"), 10: ("producer_access_mode", "E:ProducerAccessMode"),
                        11: ("topic_epoch", "u"), 12: ("txn_enabled", "b"), 13: ("initial_subscription_name", "s")},
    "CommandSend": {1: ("producer_id", "u"), 2: ("sequence_id", "u"), 3: ("num_messages", "i32"),
                    4: ("txnid_least_bits", "u"), 5: ("txnid_most_bits", "u"), 6: ("highest_sequence_id", "u"),
                    7: ("is_chunk", "b"), 8: ("marker", "b"), 9: ("message_id", "MessageIdData")},
    "KeySharedMeta": {1: ("keySharedMode", "E:KeySharedMode"), 3: ("hashRanges", "IntRange*"),
                      4: ("allowOutOfOrderDelivery", "b")},
    "CommandSubscribe": {1: ("topic", "s"), 2: ("subscription", "s"), 3: ("subType", "E:SubType"),
                         4: ("consumer_id", "u"), 5: ("request_id", "u"), 6: ("consumer_name", "s"),
                         7: ("priority_level", "i32"), 8: ("durable", "b"), 9: ("start_message_id", "MessageIdData"),
                         10: ("metadata", "KeyValue*"), 11: ("read_compacted", "b"), 12: ("schema", "Schema"),
                         13: ("initialPosition", "E:InitialPosition"), 14: ("replicate_subscription_state", "b"),
                         15: ("force_topic_creation", "b"), 16: ("start_message_rollback_duration_sec", "u"),
                         17: ("keySharedMeta", "KeySharedMeta"), 18: ("subscription_properties", "KeyValue*"),
                         19: ("consumer_epoch", "u")},
    "CommandFlow": {1: ("consumer_id", "u"), 2: ("messagePermits", "u")},
    "CommandAck": {1: ("consumer_id", "u"), 2: ("ack_type", "E:AckType"), 3: ("message_id", "MessageIdData*"),
                   4: ("validation_error", "u"), 5: ("properties", "KeyLongValue*"), 6: ("txnid_least_bits", "u"),
                   7: ("txnid_most_bits", "u"), 8: ("request_id", "u")},
    "KeyLongValue": {1: ("key", "s"), 2: ("value", "u")},
    "CommandUnsubscribe": {1: ("consumer_id", "u"), 2: ("request_id", "u"), 3: ("force", "b")},
    "CommandCloseProducer": {1: ("producer_id", "u"), 2: ("request_id", "u"), 3: ("assignedBrokerServiceUrl", "s"),
                             4: ("assignedBrokerServiceUrlTls", "s")},
    "CommandCloseConsumer": {1: ("consumer_id", "u"), 2: ("request_id", "u"), 3: ("assignedBrokerServiceUrl", "s"),
                             4: ("assignedBrokerServiceUrlTls", "s")},
    "CommandRedeliver": {1: ("consumer_id", "u"), 2: ("message_ids", "MessageIdData*"), 3: ("consumer_epoch", "u")},
    "CommandConsumerStats": {1: ("request_id", "u"), 4: ("consumer_id", "u")},
    "CommandGetLastMessageId": {1: ("consumer_id", "u"), 2: ("request_id", "u")},
    "CommandGetSchema": {1: ("request_id", "u"), 2: ("topic", "s"), 3: ("schema_version", "y")},
    "CommandAuthResponse": {1: ("client_version", "s"), 2: ("response", "AuthData"), 3: ("protocol_version", "i32")},
    "MessageMetadata": {1: ("producer_name", "s"), 2: ("sequence_id", "u"), 3: ("publish_time", "u"),
                        4: ("properties", "KeyValue*"), 5: ("replicated_from", "s"), 6: ("partition_key", "s"),
                        7: ("replicate_to", "s*"), 8: ("compression", "E:CompressionType"),
                        9: ("uncompressed_size", "u"), 11: ("num_messages_in_batch", "i32"), 12: ("event_time", "u"),
                        14: ("encryption_algo", "s"), 15: ("encryption_param", "y"), 16: ("schema_version", "y"),
                        17: ("partition_key_b64_encoded", "b"), 18: ("ordering_key", "y"),
                        19: ("deliver_at_time", "i64"), 20: ("marker_type", "i32"), 22: ("txnid_least_bits", "u"),
                        23: ("txnid_most_bits", "u"), 24: ("highest_sequence_id", "u"), 25: ("null_value", "b"),
                        26: ("uuid", "s"), 27: ("num_chunks_from_msg", "i32"), 28: ("total_chunk_msg_size", "i32"),
                        29: ("chunk_id", "i32"), 30: ("null_partition_key", "b")},
    "SingleMessageMetadata": {1: ("properties", "KeyValue*"), 2: ("partition_key", "s"), 3: ("payload_size", "i32"),
                              4: ("compacted_out", "b"), 5: ("event_time", "u"),
                              6: ("partition_key_b64_encoded", "b"), 7: ("ordering_key", "y"),
                              8: ("sequence_id", "u"), 9: ("null_value", "b"), 10: ("null_partition_key", "b")},
}


def _scalar(typ, wt, v):
    if typ == "u":
        return v
    if typ in ("i64", "i32"):
        return v - (1 << 64) if v >= 1 << 63 else v
    if typ == "b":
        return bool(v)
    if typ == "s":
        return v.decode("utf-8")
    if typ == "y":
        try:
            text = v.decode("ascii")
            if text.isprintable():
                return text
        except UnicodeDecodeError:
            pass
        return {"hex": v.hex()}
    if typ.startswith("E:"):
        return ENUMS[typ[2:]].get(v, v)
    return decode(v, typ)


def decode(buf, schema):
    """Decode a protobuf message into a dict using SCHEMAS; unknown fields -> 'field_<n>'."""
    fields = SCHEMAS[schema]
    out = {}
    for f, wt, v in raw_fields(buf):
        name, typ = fields.get(f, ("field_%d" % f, None))
        if typ is None:
            val = v.hex() if isinstance(v, bytes) else v
            out.setdefault(name, []).append(val)
            continue
        repeated = typ.endswith("*")
        val = _scalar(typ.rstrip("*"), wt, v)
        if repeated:
            out.setdefault(name, []).append(val)
        else:
            out[name] = val
    return out

# ----------------------------------------------------------------------------------------
# Decompressors used only to check the captured payloads
# ----------------------------------------------------------------------------------------

def lz4_block_decompress(src):
    dst, i = bytearray(), 0
    while i < len(src):
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        dst += src[i:i + lit]
        i += lit
        if i >= len(src):
            break
        offset = src[i] | src[i + 1] << 8
        i += 2
        mlen = token & 15
        if mlen == 15:
            while True:
                b = src[i]
                i += 1
                mlen += b
                if b != 255:
                    break
        for _ in range(mlen + 4):
            dst.append(dst[-offset])
    return bytes(dst)


def snappy_decompress(src):
    _, i = read_varint(src, 0)                  # uncompressed length
    dst = bytearray()
    while i < len(src):
        tag = src[i]
        i += 1
        kind = tag & 3
        if kind == 0:                            # literal
            n = tag >> 2
            if n >= 60:
                nb = n - 59
                n = int.from_bytes(src[i:i + nb], "little")
                i += nb
            n += 1
            dst += src[i:i + n]
            i += n
            continue
        if kind == 1:
            length, offset = 4 + ((tag >> 2) & 7), (tag >> 5) << 8 | src[i]
            i += 1
        elif kind == 2:
            length, offset = (tag >> 2) + 1, int.from_bytes(src[i:i + 2], "little")
            i += 2
        else:
            length, offset = (tag >> 2) + 1, int.from_bytes(src[i:i + 4], "little")
            i += 4
        for _ in range(length):
            dst.append(dst[-offset])
    return bytes(dst)


def decompress(kind, data):
    """Returns (bytes or None, how)."""
    if kind == "LZ4":
        return lz4_block_decompress(data), "LZ4 block format (no frame header), hand decoder"
    if kind == "SNAPPY":
        return snappy_decompress(data), "raw snappy (not framed), hand decoder"
    if kind == "ZLIB":
        return zlib.decompress(data), "zlib stream (RFC1950 header), Python zlib"
    if kind == "ZSTD":
        try:
            import zstandard  # optional
            return zstandard.ZstdDecompressor().decompress(data), "zstd frame, zstandard package"
        except ImportError:
            return None, "zstd frame (magic 28b52ffd); not verified in Python (no zstd module)"
    return data, "none"

# ----------------------------------------------------------------------------------------
# Frame decoding (for the manifest)
# ----------------------------------------------------------------------------------------

def _text_or_hex(b):
    try:
        t = b.decode("ascii")
        if t.isprintable():
            return {"text": t, "len": len(b)}
    except UnicodeDecodeError:
        pass
    return {"hex": b.hex(), "len": len(b)}


def decode_frame(raw):
    total, cmd_size = struct.unpack_from(">II", raw, 0)
    assert total == len(raw) - 4, "totalSize mismatch"
    cmd = raw[8:8 + cmd_size]
    out = {"total_size": total, "command_size": cmd_size, "command": decode(cmd, "BaseCommand")}
    rest = raw[8 + cmd_size:]
    if not rest:
        return out
    magic = struct.unpack_from(">H", rest, 0)[0]
    assert magic == 0x0E01, "expected magic 0x0e01, got %#x" % magic
    crc = struct.unpack_from(">I", rest, 2)[0]
    md_size = struct.unpack_from(">I", rest, 6)[0]
    md_raw = rest[10:10 + md_size]
    payload = rest[10 + md_size:]
    md = decode(md_raw, "MessageMetadata")
    sec = {"magic": "0x0e01", "checksum": crc, "checksum_ok": crc32c(rest[6:]) == crc,
           "metadata_size": md_size, "metadata": md, "payload": _text_or_hex(payload)}
    comp = md.get("compression", "NONE")
    data = payload
    if comp != "NONE":
        data, how = decompress(comp, payload)
        sec["compression_format"] = how
        if data is not None:
            sec["decompressed"] = _text_or_hex(data)
            sec["decompressed_size_ok"] = len(data) == md.get("uncompressed_size")
    if data is not None and "num_messages_in_batch" in md:
        batch, i = [], 0
        while i < len(data):
            smm_size = struct.unpack_from(">I", data, i)[0]
            smm = decode(data[i + 4:i + 4 + smm_size], "SingleMessageMetadata")
            i += 4 + smm_size
            body = data[i:i + smm["payload_size"]]
            i += smm["payload_size"]
            batch.append({"single_metadata_size": smm_size, "single_metadata": smm, "payload": _text_or_hex(body)})
        sec["batch"] = batch
    out["payload_section"] = sec
    return out

# ----------------------------------------------------------------------------------------
# Fake broker
# ----------------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.frames = []                 # dicts: scenario, conn, type, raw
        self.scenario = "init"
        self.cond = threading.Condition()
        self.next_entry = 0              # entry ids for receipts and pushed messages
        self.unhandled = []
        self.pushed = {}                 # scenario -> entry ids of MESSAGE frames pushed to consumers

    def record(self, conn_id, type_name, raw):
        with self.cond:
            self.frames.append({"scenario": self.scenario, "conn": conn_id, "type": type_name, "raw": raw})
            self.cond.notify_all()

    def alloc_entry(self):
        with self.cond:
            e = self.next_entry
            self.next_entry += 1
            return e

    def wait_for(self, scenario, type_name, timeout=3.0, pred=None):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for f in self.frames:
                    if f["scenario"] == scenario and f["type"] == type_name and (pred is None or pred(f["raw"])):
                        return f
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)


class BrokerHandler(socketserver.BaseRequestHandler):
    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def send(self, data):
        self.request.sendall(data)

    def handle(self):
        rec = self.server.recorder
        conn_id = "%s:%d" % self.client_address
        self.consumers_fed = set()
        try:
            while True:
                head = self.recv_exact(4)
                body = self.recv_exact(struct.unpack(">I", head)[0])
                raw = head + body
                cmd_size = struct.unpack_from(">I", body, 0)[0]
                cmd = body[4:4 + cmd_size]
                type_num = get(cmd, 1)
                sub = get(cmd, type_num, b"")
                rec.record(conn_id, TYPES.get(type_num, str(type_num)), raw)
                self.respond(rec, type_num, sub)
        except (EOFError, ConnectionError, OSError):
            pass

    def respond(self, rec, t, sub):
        if t == T["CONNECT"]:
            client_pv = get(sub, 4, 0)
            self.send(simple_frame(command(T["CONNECTED"], f_bytes(1, SERVER_VERSION),
                                           f_varint(2, min(20, client_pv)), f_varint(3, MAX_MESSAGE_SIZE))))
            if self.server.ping_after_connect():
                self.send(simple_frame(command(T["PING"])))          # to capture the client's PONG
        elif t == T["PARTITIONED_METADATA"]:
            self.send(simple_frame(command(T["PARTITIONED_METADATA_RESPONSE"],
                                           f_varint(1, 0), f_varint(2, get(sub, 2)), f_varint(3, 0))))
        elif t == T["LOOKUP"]:
            self.send(simple_frame(command(T["LOOKUP_RESPONSE"], f_bytes(1, self.server.url),
                                           f_varint(3, 1), f_varint(4, get(sub, 2)))))
        elif t == T["PRODUCER"]:
            name = get(sub, 4, PRODUCER_NAME.encode())
            self.send(simple_frame(command(T["PRODUCER_SUCCESS"], f_varint(1, get(sub, 3)),
                                           f_bytes(2, name), f_varint(3, -1))))
        elif t == T["SEND"]:
            fields = [f_varint(1, get(sub, 1)), f_varint(2, get(sub, 2)),
                      f_msg(3, f_varint(1, LEDGER_ID), f_varint(2, rec.alloc_entry()))]
            if get(sub, 6) is not None:
                fields.append(f_varint(4, get(sub, 6)))
            self.send(simple_frame(command(T["SEND_RECEIPT"], *fields)))
        elif t in (T["SUBSCRIBE"], T["UNSUBSCRIBE"], T["CLOSE_PRODUCER"], T["CLOSE_CONSUMER"]):
            req_field = 5 if t == T["SUBSCRIBE"] else 2
            self.send(simple_frame(command(T["SUCCESS"], f_varint(1, get(sub, req_field)))))
        elif t == T["PING"]:
            self.send(simple_frame(command(T["PONG"])))
        elif t == T["FLOW"]:
            consumer_id = get(sub, 1)
            if consumer_id not in self.consumers_fed:
                self.consumers_fed.add(consumer_id)
                for i in range(MESSAGES_PER_FLOW):
                    entry = rec.alloc_entry()
                    rec.pushed.setdefault(rec.scenario, []).append(entry)
                    md = (f_bytes(1, PRODUCER_NAME) + f_varint(2, i) + f_varint(3, PUSHED_PUBLISH_TIME + i))
                    cmd = command(T["MESSAGE"], f_varint(1, consumer_id),
                                  f_msg(2, f_varint(1, LEDGER_ID), f_varint(2, entry)))
                    self.send(payload_frame(cmd, md, b"msg-%d" % i))
        elif t in (T["ACK"], T["PONG"], T["REDELIVER_UNACKNOWLEDGED_MESSAGES"]):
            pass                                                          # no reply needed
        else:
            rec.unhandled.append(TYPES.get(t, t))
            print("capture: unhandled command %s" % TYPES.get(t, t), file=sys.stderr)


class FakeBroker(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, recorder):
        super().__init__(("127.0.0.1", 0), BrokerHandler)
        self.recorder = recorder
        self.url = "pulsar://127.0.0.1:%d" % self.server_address[1]

    def ping_after_connect(self):
        return self.recorder.scenario == "token"

# ----------------------------------------------------------------------------------------
# Scenarios driving the real client
# ----------------------------------------------------------------------------------------

def run_scenarios(rec, url):
    import pulsar

    logger = logging.getLogger("pulsar-client")
    logger.setLevel(logging.WARNING)

    def client(**kw):
        return pulsar.Client(url, operation_timeout_seconds=5, logger=logger, **kw)

    def scenario(name):
        rec.scenario = name

    # 1. no auth: lookup, producer, single non-batched send, close producer
    scenario("noauth")
    c = client()
    p = c.create_producer(TOPIC, batching_enabled=False)
    p.send(b"hello")
    p.close()
    c.close()

    # 2. token auth (the fake broker also PINGs this connection to capture a PONG)
    scenario("token")
    c = client(authentication=pulsar.AuthenticationToken(TOKEN))
    p = c.create_producer(TOPIC, batching_enabled=False)
    rec.wait_for("token", "PONG", timeout=2)
    p.close()
    c.close()

    # 3. batch of 3 with properties and partition keys
    scenario("batch3")
    c = client()
    p = c.create_producer(TOPIC, batching_enabled=True, batching_max_messages=3,
                          batching_max_publish_delay_ms=60000)
    done = []
    for i in range(1, 4):
        p.send_async(b"batch-%d" % i, lambda res, mid: done.append(res),
                     properties={"k": "v%d" % i}, partition_key="key-%d" % i)
    p.flush()
    p.close()
    c.close()

    # 4. compression, one single (non-batched) message each
    for name, ctype in (("lz4", pulsar.CompressionType.LZ4), ("zlib", pulsar.CompressionType.ZLib),
                        ("zstd", pulsar.CompressionType.ZSTD), ("snappy", pulsar.CompressionType.SNAPPY)):
        scenario(name)
        c = client()
        p = c.create_producer(TOPIC, batching_enabled=False, compression_type=ctype)
        p.send(b"a" * 200)
        p.close()
        c.close()

    # 5. consumers
    types = (("exclusive", pulsar.ConsumerType.Exclusive), ("shared", pulsar.ConsumerType.Shared),
             ("failover", pulsar.ConsumerType.Failover), ("key_shared", pulsar.ConsumerType.KeyShared))
    for name, ctype in types:
        scenario("sub_" + name)
        c = client()
        cons = c.subscribe(TOPIC, "golden-" + name.replace("_", "-"), consumer_type=ctype)
        m1 = cons.receive(timeout_millis=5000)
        if name == "exclusive":
            cons.acknowledge(m1)
            rec.wait_for(rec.scenario, "ACK", timeout=3)
        elif name == "failover":
            m2 = cons.receive(timeout_millis=5000)
            cons.acknowledge_cumulative(m2)
            rec.wait_for(rec.scenario, "ACK", timeout=3)
            cons.unsubscribe()
        cons.close()
        c.close()
    scenario("done")

# ----------------------------------------------------------------------------------------
# Selection of golden files and the values we intended / expect
# ----------------------------------------------------------------------------------------

def ack_type_is(n):
    return lambda raw: get(get(raw[8:8 + struct.unpack_from(">I", raw, 4)[0]], 10), 2) == n


A200 = "a" * 200
try:
    import zstandard  # noqa: F401  (optional: lets the script verify the ZSTD capture)
    HAVE_ZSTD = True
except ImportError:
    HAVE_ZSTD = False
# (file, scenario, command type, predicate, optional, {dotted path in decoded frame: expected value})
SPEC = [
    ("connect_noauth.bin", "noauth", "CONNECT", None, False,
     {"command.connect.auth_method_name": "none", "command.connect.protocol_version": 20}),
    ("connect_token.bin", "token", "CONNECT", None, False,
     {"command.connect.auth_method_name": "token", "command.connect.auth_data": TOKEN,
      "command.connect.protocol_version": 20}),
    ("partitioned_metadata.bin", "noauth", "PARTITIONED_METADATA", None, False,
     {"command.partitionMetadata.topic": TOPIC}),
    ("lookup.bin", "noauth", "LOOKUP", None, False, {"command.lookupTopic.topic": TOPIC}),
    ("producer.bin", "noauth", "PRODUCER", None, False, {"command.producer.topic": TOPIC}),
    ("send_single.bin", "noauth", "SEND", None, False,
     {"command.send.sequence_id": 0, "payload_section.checksum_ok": True,
      "payload_section.metadata.producer_name": PRODUCER_NAME, "payload_section.metadata.sequence_id": 0,
      "payload_section.payload.text": "hello"}),
    ("send_batch3.bin", "batch3", "SEND", None, False,
     {"command.send.num_messages": 3, "payload_section.checksum_ok": True,
      "payload_section.metadata.num_messages_in_batch": 3,
      "payload_section.batch.0.single_metadata.partition_key": "key-1",
      "payload_section.batch.0.single_metadata.properties.0.key": "k",
      "payload_section.batch.0.single_metadata.properties.0.value": "v1",
      "payload_section.batch.0.payload.text": "batch-1",
      "payload_section.batch.1.single_metadata.partition_key": "key-2",
      "payload_section.batch.1.single_metadata.properties.0.value": "v2",
      "payload_section.batch.1.payload.text": "batch-2",
      "payload_section.batch.2.single_metadata.partition_key": "key-3",
      "payload_section.batch.2.single_metadata.properties.0.value": "v3",
      "payload_section.batch.2.payload.text": "batch-3"}),
    ("send_single_lz4.bin", "lz4", "SEND", None, False,
     {"payload_section.checksum_ok": True, "payload_section.metadata.compression": "LZ4",
      "payload_section.metadata.uncompressed_size": 200, "payload_section.decompressed.text": A200}),
    ("send_single_zlib.bin", "zlib", "SEND", None, False,
     {"payload_section.checksum_ok": True, "payload_section.metadata.compression": "ZLIB",
      "payload_section.metadata.uncompressed_size": 200, "payload_section.decompressed.text": A200}),
    ("send_single_zstd.bin", "zstd", "SEND", None, False,
     dict({"payload_section.checksum_ok": True, "payload_section.metadata.compression": "ZSTD",
           "payload_section.metadata.uncompressed_size": 200},
          **({"payload_section.decompressed.text": A200} if HAVE_ZSTD else {}))),
    ("send_single_snappy.bin", "snappy", "SEND", None, False,
     {"payload_section.checksum_ok": True, "payload_section.metadata.compression": "SNAPPY",
      "payload_section.metadata.uncompressed_size": 200, "payload_section.decompressed.text": A200}),
    ("close_producer.bin", "noauth", "CLOSE_PRODUCER", None, False, {}),
    ("subscribe_exclusive.bin", "sub_exclusive", "SUBSCRIBE", None, False,
     {"command.subscribe.topic": TOPIC, "command.subscribe.subscription": "golden-exclusive",
      "command.subscribe.subType": "Exclusive"}),
    ("subscribe_shared.bin", "sub_shared", "SUBSCRIBE", None, False,
     {"command.subscribe.subscription": "golden-shared", "command.subscribe.subType": "Shared"}),
    ("subscribe_failover.bin", "sub_failover", "SUBSCRIBE", None, False,
     {"command.subscribe.subscription": "golden-failover", "command.subscribe.subType": "Failover"}),
    ("subscribe_key_shared.bin", "sub_key_shared", "SUBSCRIBE", None, False,
     {"command.subscribe.subscription": "golden-key-shared", "command.subscribe.subType": "Key_Shared"}),
    ("flow.bin", "sub_exclusive", "FLOW", None, False, {"command.flow.messagePermits": 1000}),
    ("ack_individual.bin", "sub_exclusive", "ACK", ack_type_is(0), False,
     {"command.ack.ack_type": "Individual", "command.ack.message_id.0.ledgerId": LEDGER_ID}),
    ("ack_cumulative.bin", "sub_failover", "ACK", ack_type_is(1), False,
     {"command.ack.ack_type": "Cumulative", "command.ack.message_id.0.ledgerId": LEDGER_ID}),
    ("unsubscribe.bin", "sub_failover", "UNSUBSCRIBE", None, False, {}),
    ("close_consumer.bin", "sub_exclusive", "CLOSE_CONSUMER", None, False, {}),
    ("pong.bin", "token", "PONG", None, True, {}),
    ("ping.bin", None, "PING", None, True, {}),
]


def lookup_path(obj, path):
    for part in path.split("."):
        if isinstance(obj, list):
            obj = obj[int(part)]
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return "<missing>"
    return obj


def flatten(obj, prefix=""):
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    else:
        return {prefix: obj}
    out = {}
    for k, v in items:
        out.update(flatten(v, "%s.%s" % (prefix, k) if prefix else str(k)))
    return out


def select(rec):
    """file -> frame dict (first match) for one run."""
    picked = {}
    for fname, scen, typ, pred, _opt, _exp in SPEC:
        for f in rec.frames:
            if f["type"] == typ and (scen is None or f["scenario"] == scen) and (pred is None or pred(f["raw"])):
                picked[fname] = f
                break
    return picked


def capture_once():
    rec = Recorder()
    server = FakeBroker(rec)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run_scenarios(rec, server.url)
    finally:
        server.shutdown()
        server.server_close()
    return rec, select(rec), server.url

# ----------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--runs", type=int, default=2, help="capture runs to compare (first run is written)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    socket.setdefaulttimeout(None)

    try:
        from importlib.metadata import version
        client_pkg_version = version("pulsar-client")
    except Exception:
        client_pkg_version = "unknown"

    t0 = time.time()
    runs = [capture_once() for _ in range(max(1, args.runs))]
    rec, picked, _url = runs[0]

    manifest = {
        "generator": "capture.py",
        "pulsar_client_version": client_pkg_version,
        "topic": TOPIC,
        "fake_broker": {"server_version": SERVER_VERSION, "connected_protocol_version": "min(20, client)",
                        "max_message_size": MAX_MESSAGE_SIZE, "assigned_producer_name": PRODUCER_NAME,
                        "receipt_and_message_ledger_id": LEDGER_ID,
                        "pushed_messages": {"count_per_consumer": MESSAGES_PER_FLOW,
                                            "payloads": ["msg-%d" % i for i in range(MESSAGES_PER_FLOW)],
                                            "publish_time_base": PUSHED_PUBLISH_TIME,
                                            "entry_ids_by_scenario": rec.pushed},
                        "service_url": "pulsar://127.0.0.1:<ephemeral port> (LOOKUP answers with the same URL)"},
        "runs_compared": len(runs),
        "zstd_verified_in_python": HAVE_ZSTD,
        "notes": [
            "Each .bin file is one complete frame exactly as the client sent it: [u32 totalSize][u32 cmdSize]"
            "[BaseCommand] and, for SEND, [0x0e01][u32 crc32c][u32 metadataSize][MessageMetadata][payload].",
            "Fields that differ between runs: MessageMetadata.publish_time (wall clock, ms) and hence the CRC32C "
            "checksum of every SEND; SUBSCRIBE.consumer_name (random 10 hex chars chosen by the C++ client). "
            "Frame sizes and every other byte are stable.",
            "'expected' lists what the scenario set on purpose (asserted by capture.py); 'decoded' is the full "
            "hand decode of the frame, including fields the client fills in on its own.",
            "ping.bin is normally absent: the C++ client only sends PING on its 30 s keep-alive tick, which the "
            "capture does not wait for. pong.bin is the client's answer to a PING sent by the fake broker.",
        ],
        "unhandled_commands_seen": sorted(set(map(str, rec.unhandled))),
        "frame_sequence_run1": [{"scenario": f["scenario"], "type": f["type"], "size": len(f["raw"])}
                                for f in rec.frames],
        "files": {},
    }
    failures = []
    for fname, scen, typ, _pred, optional, expected in SPEC:
        path = os.path.join(args.out, fname)
        frame = picked.get(fname)
        if frame is None:
            if os.path.exists(path):
                os.remove(path)
            if optional:
                print("capture: %s not seen (optional), skipped" % fname, file=sys.stderr)
            else:
                failures.append("%s: no %s frame captured in scenario %s" % (fname, typ, scen))
            continue
        raw = frame["raw"]
        decoded = decode_frame(raw)
        with open(path, "wb") as fh:
            fh.write(raw)
        expected = dict(expected)
        if fname == "ack_individual.bin":      # acks the 1st message pushed to the exclusive consumer
            expected["command.ack.message_id.0.entryId"] = rec.pushed.get("sub_exclusive", [None])[0]
        if fname == "ack_cumulative.bin":      # acks the 2nd message pushed to the failover consumer
            expected["command.ack.message_id.0.entryId"] = rec.pushed.get("sub_failover", [None, None])[1]
        checks = {}
        for p, want in expected.items():
            got = lookup_path(decoded, p)
            checks[p] = want
            if got != want:
                failures.append("%s: %s = %r, expected %r" % (fname, p, got, want))
        # which decoded fields differ between runs
        flat0 = flatten(decoded)
        varies, identical = set(), True
        for _rec, other, _url in runs[1:]:
            o = other.get(fname)
            if o is None:
                continue
            identical &= o["raw"] == raw
            flat1 = flatten(decode_frame(o["raw"]))
            varies |= {k for k in set(flat0) | set(flat1) if flat0.get(k) != flat1.get(k)}
        manifest["files"][fname] = {
            "command": typ,
            "scenario": frame["scenario"],
            "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "identical_across_runs": identical if len(runs) > 1 else None,
            "varies_between_runs": sorted(varies),
            "expected": checks,
            "decoded": decoded,
        }
    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")

    for fname, info in manifest["files"].items():
        print("%-26s %4d bytes  %-22s varies: %s" % (fname, info["size"], info["command"],
                                                     ", ".join(info["varies_between_runs"]) or "-"))
    print("pulsar-client %s, %d run(s), %.1fs" % (client_pkg_version, len(runs), time.time() - t0))
    if failures:
        print("FAILURES:\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
