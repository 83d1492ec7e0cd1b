"""Permissions, checked on every AMQP operation as RabbitMQ 3.10 does.

One test per row of the table in ../shared/design/rabbitmq-behaviour.md, each with an allowed
and a refused case. The broker is the `acme` fixture (a RabbitMQ export loaded at boot), whose
users are:

* acme-app in acme-shop: configure ^app\\. ; write ^(orders|legacy|app\\..*)$ ;
  read ^(orders.*|app\\..*)$ ; topic permission on `orders`: write ^(eu|us|vip|asia)\\. ,
  read ^app\\. ; no permission in acme-billing.
* acme-auditor: acme-shop configure "" write "" read ^orders\\.(eu|us)$ ; acme-billing read .*
* acme-admin: everything in both vhosts.

Run against RabbitMQ with WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5673/%2f
WARREN_REFERENCE_CTL="/work/shared/tools/reference-rabbitmq ctl 5673" pytest -n 0 ...
"""

import re

import pika
import pika.exceptions as pex
import pytest

from helpers import channel_error, uid
from warren_proc import ACME_PASSWORDS

SHOP = "acme-shop"


def refused(kind, name, user="acme-app", vhost=SHOP):
    return "ACCESS_REFUSED - access to %s '%s' in vhost '%s' refused for user '%s'" % (
        kind, name, vhost, user)


def topic_refused(key, exchange, user="acme-app", vhost=SHOP):
    return ("ACCESS_REFUSED - access to topic '%s' in exchange '%s' in vhost '%s' refused for "
            "user '%s'" % (key, exchange, vhost, user))


@pytest.fixture
def login(acme):
    conns = []

    def _login(user, vhost=SHOP):
        c = pika.BlockingConnection(acme.params(user, ACME_PASSWORDS[user], vhost))
        conns.append(c)
        return c

    yield _login
    for c in conns:
        try:
            if c.is_open:
                c.close()
        except Exception:
            pass


@pytest.fixture
def admin(login):
    """A channel of acme-admin in acme-shop, for setting up and cleaning up."""
    return login("acme-admin").channel()


def test_connection_open_needs_a_permission_in_the_vhost(acme):
    with pytest.raises(pex.ProbableAccessDeniedError) as ei:
        pika.BlockingConnection(acme.params("acme-app", "app-secret", "acme-billing"))
    assert "NOT_ALLOWED - access to vhost 'acme-billing' refused for user 'acme-app'" in str(ei.value)
    with pytest.raises(pex.AMQPConnectionError) as ei:
        pika.BlockingConnection(acme.params("acme-app", "app-secret", "nope"))
    assert "NOT_ALLOWED - vhost nope not found" in str(ei.value)
    # Allowed: the auditor may read in acme-billing.
    pika.BlockingConnection(acme.params("acme-auditor", "audit-secret", "acme-billing")).close()


def test_failed_login_is_403(acme):
    with pytest.raises(pex.ProbableAuthenticationError) as ei:
        pika.BlockingConnection(acme.params("acme-app", "wrong", SHOP))
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in str(ei.value)


def test_exchange_declare_checks_configure_even_if_it_exists(login, admin):
    conn = login("acme-app")
    ch = conn.channel()
    name = uid("app.x")
    ch.exchange_declare(name, "direct", durable=False, auto_delete=False)
    ch.exchange_declare(name, "direct", durable=False, auto_delete=False)
    other = uid("other")
    with channel_error(conn, ch, 403, refused("exchange", other)):
        ch.exchange_declare(other, "direct")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("exchange", "orders")):
        ch.exchange_declare("orders", "topic", arguments={"alternate-exchange": "orders.unrouted"})
    admin.exchange_delete(name)


def test_exchange_declare_with_alternate_exchange_needs_write_on_it(login, admin):
    conn = login("acme-app")
    ch = conn.channel()
    ok, bad = uid("app.x"), uid("app.x")
    ch.exchange_declare(ok, "fanout", durable=False, arguments={"alternate-exchange": "app.ae"})
    with channel_error(conn, ch, 403, refused("exchange", "orders.unrouted")):
        ch.exchange_declare(bad, "fanout", durable=False,
                            arguments={"alternate-exchange": "orders.unrouted"})
    admin.exchange_delete(ok)
    admin.exchange_delete(bad)


def test_passive_declares_check_nothing(login):
    conn = login("acme-auditor")
    ch = conn.channel()
    ch.exchange_declare("orders", passive=True)
    ch.exchange_declare("orders.unrouted", passive=True)
    ch.queue_declare("orders.vip.gold", passive=True)
    ch.queue_declare("orders.unrouted", passive=True)


def test_queue_declare_checks_configure(login, admin):
    conn = login("acme-app")
    ch = conn.channel()
    ok = uid("app.q")
    ch.queue_declare(ok, durable=False)
    bad = uid("q")
    with channel_error(conn, ch, 403, refused("queue", bad)):
        ch.queue_declare(bad, durable=False)
    admin.queue_delete(ok)


def test_server_named_queue_is_matched_by_its_generated_name(login):
    conn = login("acme-app")
    ch = conn.channel()
    with pytest.raises(pex.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 403
    assert re.fullmatch(
        r"ACCESS_REFUSED - access to queue 'amq\.gen-[A-Za-z0-9_\-]{22}' in vhost 'acme-shop' "
        r"refused for user 'acme-app'", ei.value.reply_text), ei.value.reply_text
    # The admin may: amq.gen- matches .*
    login("acme-admin").channel().queue_declare("", exclusive=True)


def test_queue_declare_with_dead_letter_exchange_needs_write_on_it(login, admin):
    conn = login("acme-app")
    ch = conn.channel()
    ok, bad = uid("app.q"), uid("app.q")
    ch.queue_declare(ok, durable=False, arguments={"x-dead-letter-exchange": "app.dlx"})
    with channel_error(conn, ch, 403, refused("exchange", "orders.unrouted")):
        ch.queue_declare(bad, durable=False,
                         arguments={"x-dead-letter-exchange": "orders.unrouted"})
    admin.queue_delete(ok)
    admin.queue_delete(bad)


def test_deletes_check_configure_even_when_missing(login):
    conn = login("acme-app")
    ch = conn.channel()
    ch.exchange_delete(uid("app.missing"))
    ch.queue_delete(uid("app.missing"))
    with channel_error(conn, ch, 403, refused("exchange", "missing-x")):
        ch.exchange_delete("missing-x")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("queue", "missing-q")):
        ch.queue_delete("missing-q")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("queue", "orders.eu")):
        ch.queue_delete("orders.eu")


def test_queue_bind_needs_write_on_queue_and_read_on_exchange(login, admin):
    conn = login("acme-app")
    ch = conn.channel()
    q = uid("app.q")
    ch.queue_declare(q, durable=False)
    ch.queue_bind(q, "orders", "app.#")
    ch.queue_unbind(q, "orders", "app.#")
    with channel_error(conn, ch, 403, refused("exchange", "amq.direct")):
        ch.queue_bind(q, "amq.direct", "k")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("queue", "orders.eu")):
        ch.queue_bind("orders.eu", "orders", "app.x")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("queue", "orders.eu")):
        ch.queue_unbind("orders.eu", "orders", "eu.#")
    admin.queue_delete(q)


def test_topic_permission_on_binding_keys(login, admin):
    conn = login("acme-app")
    ch = conn.channel()
    q = uid("app.q")
    ch.queue_declare(q, durable=False)
    with channel_error(conn, ch, 403, topic_refused("eu.#", "orders")):
        ch.queue_bind(q, "orders", "eu.#")
    ch = conn.channel()
    with channel_error(conn, ch, 403, topic_refused("eu.#", "orders")):
        ch.queue_unbind(q, "orders", "eu.#")
    # Topic permissions apply only to the exchange they name.
    ch = conn.channel()
    x = uid("app.x")
    ch.exchange_declare(x, "topic", durable=False)
    ch.queue_bind(q, x, "eu.#")
    admin.queue_delete(q)
    admin.exchange_delete(x)


def test_exchange_bind_needs_write_on_destination_and_read_on_source(login, admin):
    conn = login("acme-app")
    ch = conn.channel()
    x = uid("app.x")
    ch.exchange_declare(x, "fanout", durable=False)
    ch.exchange_bind(x, "orders", "app.#")
    ch.exchange_unbind(x, "orders", "app.#")
    with channel_error(conn, ch, 403, refused("exchange", "orders.unrouted")):
        ch.exchange_bind("orders.unrouted", x, "k")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("exchange", "amq.fanout")):
        ch.exchange_bind(x, "amq.fanout", "k")
    ch = conn.channel()
    with channel_error(conn, ch, 403, topic_refused("us.#", "orders")):
        ch.exchange_bind(x, "orders", "us.#")
    admin.exchange_delete(x)


def test_publish_needs_write_and_the_default_exchange_is_amq_default(login, admin):
    admin.queue_purge("orders.eu")
    conn = login("acme-app")
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("orders", "eu.app-test", b"allowed")
    with channel_error(conn, ch, 403, refused("exchange", "orders.unrouted")):
        ch.basic_publish("orders.unrouted", "", b"x")
    ch = conn.channel()
    ch.confirm_delivery()
    with channel_error(conn, ch, 403, refused("exchange", "amq.default")):
        ch.basic_publish("", "orders.eu", b"x")
    m, _, body = admin.basic_get("orders.eu", auto_ack=True)
    assert body == b"allowed"
    assert admin.basic_get("orders.eu", auto_ack=True)[0] is None


def test_topic_permission_on_routing_keys(login, admin):
    admin.queue_purge("orders.unrouted")
    conn = login("acme-app")
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("orders", "asia.jp", b"allowed")
    with channel_error(conn, ch, 403, topic_refused("jp.tokyo", "orders")):
        ch.basic_publish("orders", "jp.tokyo", b"x")
    # Not a topic exchange: no topic check.
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("legacy", "jp.tokyo", b"also allowed")
    bodies = []
    for _ in range(2):
        m, _, b = admin.basic_get("orders.unrouted", auto_ack=True)
        bodies.append(b)
    assert sorted(bodies) == [b"allowed", b"also allowed"]


def test_get_consume_and_purge_need_read(login, admin):
    conn = login("acme-auditor")
    ch = conn.channel()
    ch.basic_get("orders.eu", auto_ack=False)
    tag = ch.basic_consume("orders.us", lambda *a: None)
    ch.basic_cancel(tag)
    with channel_error(conn, ch, 403, refused("queue", "orders.unrouted", user="acme-auditor")):
        ch.basic_get("orders.unrouted")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("queue", "orders.vip.gold", user="acme-auditor")):
        ch.basic_consume("orders.vip.gold", lambda *a: None)
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("queue", "orders.vip.any", user="acme-auditor")):
        ch.queue_purge("orders.vip.any")
    # Allowed purge: acme-app on its own queue.
    app = login("acme-app").channel()
    q = uid("app.q")
    app.queue_declare(q, durable=False)
    app.queue_purge(q)
    admin.queue_delete(q)


def test_empty_permission_matches_nothing(login):
    conn = login("acme-auditor")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("queue", "x", user="acme-auditor")):
        ch.queue_declare("x")
    ch = conn.channel()
    with channel_error(conn, ch, 403, refused("exchange", "amq.default", user="acme-auditor")):
        ch.basic_publish("", "orders.eu", b"x")
        ch.basic_qos(prefetch_count=0)
