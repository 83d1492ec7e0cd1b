"""`warren definitions export|plan|apply` against a running Warren."""

import json
import os

import pika
import pytest

from warren_proc import Warren, cli

pytestmark = pytest.mark.skipif(bool(os.environ.get("WARREN_TEST_URL")),
                                reason="drives Warren processes of its own")

SHOP = {
    "vhosts": [{"name": "shop"}],
    "users": [{"name": "app", "password": "app", "tags": []}],
    "permissions": [{"user": "app", "vhost": "shop", "configure": "^$", "write": "^orders$",
                     "read": "^eu$"}],
    "policies": [{"vhost": "shop", "name": "ae", "pattern": "^orders$", "apply-to": "exchanges",
                  "definition": {"alternate-exchange": "unrouted"}, "priority": 0}],
    "exchanges": [{"name": "orders", "vhost": "shop", "type": "topic"},
                  {"name": "unrouted", "vhost": "shop", "type": "fanout"}],
    "queues": [{"name": "eu", "vhost": "shop"}, {"name": "lost", "vhost": "shop"}],
    "bindings": [{"source": "orders", "vhost": "shop", "destination": "eu",
                  "destination_type": "queue", "routing_key": "eu.#"},
                 {"source": "unrouted", "vhost": "shop", "destination": "lost",
                  "destination_type": "queue", "routing_key": ""}],
}


@pytest.fixture
def broker(tmp_path):
    w = Warren(tmp_path)
    yield w
    w.stop()


def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(json.dumps(doc, indent=2))
    return p


def test_plan_apply_plan_is_empty(broker, tmp_path):
    f = write(tmp_path, "shop.json", SHOP)
    code, out, err = cli("definitions", "plan", f, url=broker.url)
    assert code == 2, (out, err)
    assert "+ vhost 'shop'" in out
    assert "+ queue 'eu' in vhost 'shop'" in out
    assert "Plan: 10 to create, 0 to change, 0 to replace, 0 to delete." in out
    code, out, err = cli("definitions", "apply", f, url=broker.url)
    assert code == 0, (out, err)
    assert "Applied." in out
    code, out, err = cli("definitions", "plan", f, url=broker.url)
    assert (code, out.strip()) == (0, "No changes: the broker matches the file."), err
    # What was applied works: the app publishes, the policy's alternate exchange catches.
    c = pika.BlockingConnection(broker.params("app", "app", "shop"))
    ch = c.channel()
    ch.confirm_delivery()
    ch.basic_publish("orders", "eu.x", b"1")
    ch.basic_publish("orders", "us.x", b"2")
    assert ch.basic_get("eu", auto_ack=True)[2] == b"1"
    c.close()


def test_changes_replacements_and_prune(broker, tmp_path):
    f = write(tmp_path, "shop.json", SHOP)
    assert cli("definitions", "apply", f, url=broker.url)[0] == 0
    changed = json.loads(json.dumps(SHOP))
    changed["permissions"][0]["read"] = "^(eu|lost)$"
    changed["queues"][0]["arguments"] = {"x-max-length": 10}
    changed["queues"].pop()          # 'lost'
    changed["bindings"].pop()        # unrouted -> lost
    f2 = write(tmp_path, "shop2.json", changed)
    code, out, _ = cli("definitions", "plan", f2, url=broker.url)
    assert code == 2
    assert "~ permissions of user 'app' in vhost 'shop'" in out
    assert "read: \"^eu$\" -> \"^(eu|lost)$\"" in out
    assert "-/+ queue 'eu' in vhost 'shop'" in out
    assert "- queue" not in out, "without --prune nothing is deleted"
    code, out, _ = cli("definitions", "plan", "--prune", f2, url=broker.url)
    assert "- queue 'lost' in vhost 'shop'" in out
    assert "- binding from exchange 'unrouted' to queue 'lost'" in out
    assert "vhost '/'" not in out and "user 'guest'" not in out, "defaults are never pruned"
    assert cli("definitions", "apply", f2, url=broker.url)[0] == 0
    # Without prune 'lost' stays.
    code, out, _ = cli("definitions", "plan", "--prune", f2, url=broker.url)
    assert code == 2 and "- queue 'lost'" in out
    assert cli("definitions", "apply", "--prune", f2, url=broker.url)[0] == 0
    code, out, _ = cli("definitions", "plan", "--prune", f2, url=broker.url)
    assert code == 0, out
    # guest still works after a prune.
    pika.BlockingConnection(broker.params("guest", "guest", "/")).close()


def test_export_then_apply_elsewhere_round_trips(broker, tmp_path):
    f = write(tmp_path, "shop.json", SHOP)
    assert cli("definitions", "apply", f, url=broker.url)[0] == 0
    out_json = tmp_path / "export.json"
    out_yaml = tmp_path / "export.yaml"
    assert cli("definitions", "export", out_json, url=broker.url)[0] == 0
    assert cli("definitions", "export", out_yaml, url=broker.url)[0] == 0
    code, stdout, _ = cli("definitions", "export", "--vhost", "shop", url=broker.url)
    assert code == 0 and "users" not in json.loads(stdout)
    other = Warren(tmp_path / "other")
    try:
        code, out, err = cli("definitions", "apply", out_yaml, url=other.url)
        assert code == 0, (out, err)
        for f in (out_json, out_yaml):
            code, out, _ = cli("definitions", "plan", "--prune", f, url=other.url)
            assert code == 0, out
        again = tmp_path / "again.json"
        assert cli("definitions", "export", again, url=other.url)[0] == 0
        assert json.loads(again.read_text()) == json.loads(out_json.read_text())
    finally:
        other.stop()


def test_bad_files_and_bad_credentials(broker, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("queues:\n  - name: q\n    durable: maybe\n")
    code, out, err = cli("definitions", "plan", bad, url=broker.url)
    assert code == 1 and "invalid YAML at line 3" in err, err
    wrong = write(tmp_path, "wrong.json", {"exchanges": [{"name": "x", "type": "nope"}]})
    code, out, err = cli("definitions", "apply", wrong, url=broker.url)
    assert code == 1 and "invalid exchange type 'nope'" in err, err
    f = write(tmp_path, "shop.json", SHOP)
    code, out, err = cli("definitions", "plan", f, url=broker.url, password="nope")
    assert code == 1 and "401" in err, err
