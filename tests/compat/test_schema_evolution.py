"""Schema evolution with the official Python client: the namespace's compatibility strategy
(FULL by default) decides which new schema versions producers and consumers may bring
(IncompatibleSchema otherwise), `isAllowAutoUpdateSchema` and `schemaValidationEnforced` hold
producers to the registered schemas, and the schema REST routes (`/admin/v2/schemas/…`) read,
upload, check and delete versions with Pulsar's statuses."""

import json
import urllib.error
import uuid

import pulsar
import pytest
from pulsar.schema import AvroSchema, Integer, JsonSchema, Record, String, StringSchema

from conftest import Standalone
from georep import rest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Standalone(tmp_path_factory.mktemp("schemas")).start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    c = pulsar.Client(server.url, operation_timeout_seconds=15)
    yield c
    c.close()


def namespace(server):
    ns = f"public/schemas-{uuid.uuid4().hex[:8]}"
    assert rest(server, "PUT", f"/admin/v2/namespaces/{ns}", {})[0] == 204
    return ns


def schema_path(t):
    return t.replace("persistent://", "/admin/v2/schemas/")


def http_error(server, method, path, body=None):
    with pytest.raises(urllib.error.HTTPError) as e:
        rest(server, method, path, body)
    return e.value.code, json.loads(e.value.read() or b"{}")


# Three versions of one record (Avro matches records by name, so each is called User).
def user_v1():
    class User(Record):
        name = String()
    return User


def user_v2():
    class User(Record):
        name = String()
        age = Integer(required_default=True)  # a field with a default: FULL-compatible
    return User


def user_v3():
    class User(Record):
        name = Integer()  # a field changes type: incompatible both ways
    return User


def user_v4():
    class User(Record):
        name = String()
        email = String(required=True)  # no default: old data cannot be read (not BACKWARD)
    return User


UserV1, UserV2, UserV3, UserV4 = user_v1(), user_v2(), user_v3(), user_v4()


def refused(create):
    with pytest.raises(Exception) as e:
        create()
    assert "IncompatibleSchema" in str(e.value) or "ncompatible" in str(e.value), e.value


def test_full_compatibility_is_the_default_for_avro_and_json(server, client):
    ns = namespace(server)
    for schema_kind, type_name in ((AvroSchema, "AVRO"), (JsonSchema, "JSON")):
        t = f"persistent://{ns}/users-{type_name.lower()}"
        p1 = client.create_producer(t, schema=schema_kind(UserV1))
        consumer = client.subscribe(t, "s", schema=schema_kind(UserV2))
        p1.send(UserV1(name="ada"))
        p2 = client.create_producer(t, schema=schema_kind(UserV2))
        p2.send(UserV2(name="bob", age=36))
        # The consumer's v2 reads what v1 wrote (age null) and what v2 wrote.
        first, second = consumer.receive(10_000), consumer.receive(10_000)
        assert (first.value().name, first.value().age) == ("ada", None)
        assert (second.value().name, second.value().age) == ("bob", 36)
        refused(lambda: client.create_producer(t, schema=schema_kind(UserV3)))
        refused(lambda: client.create_producer(t, schema=schema_kind(UserV4)))
        # A consumer whose schema cannot read the topic's is refused too.
        refused(lambda: client.subscribe(t, "s2", schema=schema_kind(UserV3)))
        # Another type than the topic's.
        refused(lambda: client.create_producer(t, schema=StringSchema()))

        status, latest = rest(server, "GET", schema_path(t) + "/schema")
        assert status == 200 and latest["version"] == 1 and latest["type"] == type_name
        assert json.loads(latest["data"])["fields"][1]["name"] == "age"
        assert latest["timestamp"] > 0
        _, every = rest(server, "GET", schema_path(t) + "/schemas")
        assert [v["version"] for v in every["getSchemaResponses"]] == [0, 1]
        _, v0 = rest(server, "GET", schema_path(t) + "/schema/0")
        assert [f["name"] for f in json.loads(v0["data"])["fields"]] == ["name"]
        p1.close()
        p2.close()
        consumer.close()


def test_the_namespace_strategy_decides(server, client):
    ns = namespace(server)
    path = f"/admin/v2/namespaces/{ns}/schemaCompatibilityStrategy"
    assert rest(server, "GET", path)[1] == "UNDEFINED"
    assert http_error(server, "PUT", path, "SIDEWAYS")[0] == 400

    # FORWARD: the old schema must read the new one's data; adding a required field is fine.
    assert rest(server, "PUT", path, "FORWARD")[0] == 204
    assert rest(server, "GET", path)[1] == "FORWARD"
    t = f"persistent://{ns}/forward"
    client.create_producer(t, schema=AvroSchema(UserV1)).close()
    client.create_producer(t, schema=AvroSchema(UserV4)).close()

    # BACKWARD refuses the same step.
    assert rest(server, "PUT", path, "BACKWARD")[0] == 204
    t = f"persistent://{ns}/backward"
    client.create_producer(t, schema=AvroSchema(UserV1)).close()
    refused(lambda: client.create_producer(t, schema=AvroSchema(UserV4)))

    # ALWAYS_INCOMPATIBLE: the first schema only; ALWAYS_COMPATIBLE: anything of the same type.
    assert rest(server, "PUT", path, "ALWAYS_INCOMPATIBLE")[0] == 204
    t = f"persistent://{ns}/frozen"
    client.create_producer(t, schema=AvroSchema(UserV1)).close()
    client.create_producer(t, schema=AvroSchema(UserV1)).close()  # the same one is fine
    refused(lambda: client.create_producer(t, schema=AvroSchema(UserV2)))
    assert rest(server, "PUT", path, "ALWAYS_COMPATIBLE")[0] == 204
    client.create_producer(t, schema=AvroSchema(UserV3)).close()
    _, every = rest(server, "GET", schema_path(t) + "/schemas")
    assert len(every["getSchemaResponses"]) == 2


def test_producers_keep_to_registered_schemas_when_auto_update_is_off(server, client):
    ns = namespace(server)
    t = f"persistent://{ns}/locked"
    auto = f"/admin/v2/namespaces/{ns}/isAllowAutoUpdateSchema"
    assert rest(server, "GET", auto)[1] is True
    client.create_producer(t, schema=AvroSchema(UserV1)).close()
    assert rest(server, "POST", auto, False)[0] == 204
    assert rest(server, "GET", auto)[1] is False
    # The registered schema still works; a new (even compatible) one does not.
    client.create_producer(t, schema=AvroSchema(UserV1)).close()
    refused(lambda: client.create_producer(t, schema=AvroSchema(UserV2)))
    # Uploaded through the admin API, it does.
    definition = AvroSchema(UserV2).schema_info().schema()
    status, body = rest(server, "POST", schema_path(t) + "/schema",
                        {"type": "AVRO", "schema": definition, "properties": {}})
    assert status == 200 and body == {"version": {"version": 1}}
    producer = client.create_producer(t, schema=AvroSchema(UserV2))
    producer.send(UserV2(name="eve", age=1))
    producer.close()


def test_schema_validation_enforced_refuses_producers_without_a_schema(server, client):
    ns = namespace(server)
    t = f"persistent://{ns}/enforced"
    client.create_producer(t, schema=StringSchema()).close()
    client.create_producer(t).close()  # bytes, allowed while not enforced
    enforce = f"/admin/v2/namespaces/{ns}/schemaValidationEnforced"
    assert rest(server, "GET", enforce)[1] is False
    assert rest(server, "POST", enforce, True)[0] == 204
    refused(lambda: client.create_producer(t))
    client.create_producer(t, schema=StringSchema()).close()
    # Topics without a schema still take producers without one.
    client.create_producer(f"persistent://{ns}/free").close()


def test_schema_rest_routes(server, client):
    ns = namespace(server)
    t = f"persistent://{ns}/rest"
    base = schema_path(t)
    assert http_error(server, "GET", base + "/schema")[0] == 404
    assert rest(server, "GET", base + "/schemas")[1] == {"getSchemaResponses": []}

    v1 = {"type": "AVRO", "schema": AvroSchema(UserV1).schema_info().schema(),
          "properties": {"owner": "billing"}}
    v3 = {"type": "AVRO", "schema": AvroSchema(UserV3).schema_info().schema(),
          "properties": {}}
    assert rest(server, "POST", base + "/schema", v1)[1] == {"version": {"version": 0}}
    assert rest(server, "POST", base + "/schema", v1)[1] == {"version": {"version": 0}}
    _, latest = rest(server, "GET", base + "/schema")
    assert latest["properties"] == {"owner": "billing"} and latest["type"] == "AVRO"
    assert rest(server, "POST", base + "/version", v1)[1] == {"version": 0}
    assert http_error(server, "POST", base + "/version", v3)[0] == 404

    _, answer = rest(server, "POST", base + "/compatibility", v3)
    assert answer == {"compatibility": False, "schemaCompatibilityStrategy": "FULL"}
    code, body = http_error(server, "POST", base + "/schema", v3)
    assert code == 409 and "incompatible" in body["reason"]
    code, body = http_error(server, "POST", base + "/schema",
                            {"type": "AVRO", "schema": "{\"type\": \"nothing\"}"})
    assert code == 422, body
    assert http_error(server, "POST", base + "/schema", {"type": "SOMETHING"})[0] == 422
    assert http_error(server, "GET", base + "/schema/7")[0] == 404

    # A producer's messages carry the registered version; the Python consumer decodes them.
    producer = client.create_producer(t, schema=AvroSchema(UserV1))
    consumer = client.subscribe(t, "s", schema=AvroSchema(UserV1),
                                initial_position=pulsar.InitialPosition.Earliest)
    producer.send(UserV1(name="kim"))
    assert consumer.receive(10_000).value().name == "kim"
    producer.close()
    consumer.close()

    # Deleting starts a new line: an incompatible schema (another type even) is accepted next.
    assert rest(server, "DELETE", base + "/schema")[1] == {"version": 1}
    assert http_error(server, "GET", base + "/schema")[0] == 404
    assert http_error(server, "DELETE", base + "/schema")[0] == 404
    client.create_producer(t, schema=StringSchema()).close()
    _, latest = rest(server, "GET", base + "/schema")
    assert latest["version"] == 2 and latest["type"] == "STRING"
    # Older versions stay readable by number (messages name them).
    assert rest(server, "GET", base + "/schema/0")[1]["type"] == "AVRO"
    assert http_error(server, "GET", base + "/schema/1")[0] == 404
    assert http_error(server, "GET", "/admin/v2/schemas/public/nope/t/schema")[0] == 404


def test_a_consumer_gives_an_idle_topic_its_first_schema(server, client):
    ns = namespace(server)
    t = f"persistent://{ns}/consumer-first"
    consumer = client.subscribe(t, "s", schema=AvroSchema(UserV2))
    _, latest = rest(server, "GET", schema_path(t) + "/schema")
    assert latest["version"] == 0 and latest["type"] == "AVRO"
    # A producer with an older schema that v2 reads (FULL) is accepted and its data read.
    producer = client.create_producer(t, schema=AvroSchema(UserV1))
    producer.send(UserV1(name="lee"))
    msg = consumer.receive(10_000)
    assert (msg.value().name, msg.value().age) == ("lee", None)
    consumer.close()
    producer.close()
