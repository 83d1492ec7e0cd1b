"""The HTTP API: RabbitMQ's overview, whoami and definitions endpoints, basic auth and tags."""

import json
import os

import pytest

from warren_proc import ACME, Warren, http

pytestmark = pytest.mark.skipif(bool(os.environ.get("WARREN_TEST_URL")),
                                reason="the reference RabbitMQ has no management plugin here")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    w = Warren(tmp_path_factory.mktemp("api"), "--definitions", ACME)
    yield w
    w.stop()


def test_whoami(api):
    status, _, body = http("GET", api.url + "/api/whoami", "acme-admin", "admin-secret")
    assert (status, body) == (200, {"name": "acme-admin", "tags": ["administrator"]})
    status, _, body = http("GET", api.url + "/api/whoami", "acme-auditor", "audit-secret")
    assert (status, body) == (200, {"name": "acme-auditor", "tags": ["monitoring"]})


def test_bad_credentials_are_401_with_a_challenge(api):
    status, headers, body = http("GET", api.url + "/api/whoami", "acme-admin", "wrong")
    assert status == 401
    assert body == {"error": "not_authorized", "reason": "Not_Authorized"}
    assert headers.get("www-authenticate") == 'Basic realm="RabbitMQ Management"'


def test_tags_are_required(api):
    # No management tag at all.
    status, _, body = http("GET", api.url + "/api/whoami", "acme-app", "app-secret")
    assert (status, body) == (401, {"error": "not_authorised", "reason": "Not management user"})
    # monitoring is a management tag, but definitions need administrator.
    status, _, body = http("GET", api.url + "/api/definitions", "acme-auditor", "audit-secret")
    assert (status, body) == (401, {"error": "not_authorised", "reason": "Not administrator user"})
    status, _, _ = http("POST", api.url + "/api/definitions", "acme-auditor", "audit-secret",
                        body={})
    assert status == 401


def test_overview_has_rabbitmqs_shape(api):
    status, _, o = http("GET", api.url + "/api/overview", "acme-auditor", "audit-secret")
    assert status == 200
    for key in ("management_version", "rabbitmq_version", "product_name", "product_version",
                "cluster_name", "node", "exchange_types", "listeners", "contexts",
                "message_stats", "queue_totals", "object_totals"):
        assert key in o, key
    assert o["product_name"] == "Warren"
    assert set(o["object_totals"]) == {"channels", "connections", "consumers", "exchanges",
                                       "queues"}
    assert o["object_totals"]["queues"] == 7
    assert {x["name"] for x in o["exchange_types"]} == {"direct", "fanout", "headers", "topic"}
    assert {(x["protocol"], x["port"]) for x in o["listeners"]} == {
        ("amqp", api.amqp_port), ("http", api.http_port)}


def test_export_in_rabbitmqs_format(api):
    status, _, d = http("GET", api.url + "/api/definitions", "acme-admin", "admin-secret")
    assert status == 200
    for key in ("rabbit_version", "users", "vhosts", "permissions", "topic_permissions",
                "parameters", "global_parameters", "policies", "queues", "exchanges",
                "bindings"):
        assert key in d, key
    assert {u["name"] for u in d["users"]} == {"acme-admin", "acme-app", "acme-auditor"}
    assert all(u["hashing_algorithm"] == "rabbit_password_hashing_sha256" for u in d["users"])


def test_export_of_one_vhost(api):
    status, _, d = http("GET", api.url + "/api/definitions/acme-billing", "acme-admin",
                        "admin-secret")
    assert status == 200
    assert set(d) >= {"rabbit_version", "parameters", "policies", "queues", "exchanges",
                      "bindings"}
    assert "users" not in d and "vhosts" not in d
    assert {q["name"] for q in d["queues"]} == {"invoices", "invoices.dead"}
    assert all("vhost" not in q for q in d["queues"])
    status, _, _ = http("GET", api.url + "/api/definitions/nope", "acme-admin", "admin-secret")
    assert status == 404


def test_import_into_one_vhost(api):
    body = {"queues": [{"name": "imported", "durable": True, "auto_delete": False,
                        "arguments": {}}]}
    status, _, _ = http("POST", api.url + "/api/definitions/acme-billing", "acme-admin",
                        "admin-secret", body=body)
    assert status == 204
    _, _, d = http("GET", api.url + "/api/definitions/acme-billing", "acme-admin", "admin-secret")
    assert "imported" in {q["name"] for q in d["queues"]}


def test_export_import_into_an_empty_broker_export_is_the_same(api, tmp_path):
    _, _, first = http("GET", api.url + "/api/definitions", "acme-admin", "admin-secret")
    # An empty broker: nothing but an administrator to talk to (the same user as in the export).
    admin = [u for u in first["users"] if u["name"] == "acme-admin"]
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"users": admin}))
    other = Warren(tmp_path, "--definitions", seed)
    try:
        status, _, _ = http("POST", other.url + "/api/definitions", "acme-admin",
                            "admin-secret", body=first)
        assert status == 204
        _, _, second = http("GET", other.url + "/api/definitions", "acme-admin", "admin-secret")
        assert second == first
    finally:
        other.stop()


def test_import_into_a_default_broker_replaces_guest_and_round_trips(tmp_path):
    a = Warren(tmp_path / "a")
    b = Warren(tmp_path / "b")
    try:
        body = {"vhosts": [{"name": "x"}], "queues": [{"name": "q", "vhost": "x"}],
                "permissions": [{"user": "guest", "vhost": "x", "configure": ".*",
                                 "write": ".*", "read": ".*"}]}
        assert http("POST", a.url + "/api/definitions", "guest", "guest", body=body)[0] == 204
        _, _, first = http("GET", a.url + "/api/definitions", "guest", "guest")
        assert http("POST", b.url + "/api/definitions", "guest", "guest", body=first)[0] == 204
        _, _, second = http("GET", b.url + "/api/definitions", "guest", "guest")
        assert second == first
    finally:
        a.stop()
        b.stop()
