"""Connection-level protocol errors that only a raw socket can provoke."""

import pytest

import amqp_raw as R
from amqp_raw import Closed


def declare_args(name="", exclusive=True):
    return (R.short(0) + R.shortstr(name) + R.bits(False, False, exclusive, False, False) +
            R.table({}))


def expect_connection_close(r, code, text=None, method=None, prefix=None):
    close = r.expect_close()
    assert close.is_connection, close
    assert close.channel == 0
    assert close.code == code, close
    if text is not None:
        assert close.text == text
    if prefix is not None:
        assert close.text.startswith(prefix), close
    if method is not None:
        assert (close.class_id, close.method_id) == method
    r.send_method(0, R.CONNECTION_CLOSE_OK)
    r.wait_closed(timeout=5)
    return close


def test_channel_method_on_channel_zero_504(raw_open):
    r = raw_open()
    r.send_method(0, R.QUEUE_DECLARE, declare_args())
    expect_connection_close(r, 504, "CHANNEL_ERROR - unexpected method in connection state running",
                            R.QUEUE_DECLARE)


def test_method_on_unopened_channel_504(raw_open):
    r = raw_open()
    r.send_method(3, R.QUEUE_DECLARE, declare_args())
    expect_connection_close(r, 504, "CHANNEL_ERROR - expected 'channel.open'", R.QUEUE_DECLARE)


def test_second_channel_open_504(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, R.CHANNEL_OPEN, R.shortstr(""))
    expect_connection_close(r, 504, "CHANNEL_ERROR - second 'channel.open' seen", R.CHANNEL_OPEN)


def test_unknown_frame_type_501(raw_open):
    r = raw_open()
    r.send_frame(9, 0, b"abc")
    expect_connection_close(r, 501, 'FRAME_ERROR - type 9, all octets = <<"abc">>: unknown_frame')


def test_bad_frame_end_501(raw_open):
    r = raw_open()
    r.open_channel(1)
    data = R.frame(R.FRAME_METHOD, 1, R.method_payload(R.QUEUE_DECLARE, declare_args()))
    r.send(data[:-1] + b"\x00")
    # RabbitMQ's text is an Erlang term ('... {invalid_frame_end_marker,\n 0}'): only the
    # code and the FRAME_ERROR prefix are portable.
    expect_connection_close(r, 501, prefix="FRAME_ERROR - ")


def test_frame_larger_than_frame_max_501(raw_open):
    r = raw_open(frame_max=4096)
    r.open_channel(1)
    r.send_method(1, R.BASIC_PUBLISH, R.short(0) + R.shortstr("") + R.shortstr("x") +
                  R.bits(False, False))
    r.send_frame(R.FRAME_HEADER, 1, R.short(60) + R.short(0) + R.longlong(6000) + b"\x00\x00")
    r.send_frame(R.FRAME_BODY, 1, b"x" * 5000)
    expect_connection_close(
        r, 501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}")


@pytest.mark.parametrize("ftype,payload", [
    (R.FRAME_HEADER, R.short(60) + R.short(0) + R.longlong(3) + b"\x00\x00"),
    (R.FRAME_BODY, b"abc"),
])
def test_content_without_publish_505(raw_open, ftype, payload):
    r = raw_open()
    r.open_channel(1)
    r.send_frame(ftype, 1, payload)
    expect_connection_close(
        r, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


def test_method_in_middle_of_content_505(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, R.BASIC_PUBLISH, R.short(0) + R.shortstr("") + R.shortstr("x") +
                  R.bits(False, False))
    r.send_frame(R.FRAME_HEADER, 1, R.short(60) + R.short(0) + R.longlong(3) + b"\x00\x00")
    r.send_method(1, R.BASIC_QOS, R.long_(0) + R.short(0) + R.bits(False))
    expect_connection_close(
        r, 505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        R.BASIC_PUBLISH)


@pytest.mark.parametrize("method", [(60, 99), (99, 10)])
def test_unknown_class_or_method(raw_open, broker, method):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, method)
    try:
        close = r.expect_close()
    except Closed:
        # RABBITMQ-ONLY LENIENCY: RabbitMQ resets the socket without a close frame.
        # Warren should say why: connection.close 503 COMMAND_INVALID / 540 NOT_IMPLEMENTED.
        assert broker.is_reference, "Warren must send connection.close, not just drop"
        return
    assert close.is_connection and close.code in (503, 540), close


def test_recover_requeue_false_540(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, R.BASIC_RECOVER, R.bits(False))
    expect_connection_close(r, 540, "NOT_IMPLEMENTED - requeue=false", R.BASIC_RECOVER)


def test_recover_async_requeue_false_540(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, (60, 100), R.bits(False))
    expect_connection_close(r, 540, "NOT_IMPLEMENTED - requeue=false", (60, 100))


def test_publish_immediate_540(raw_open):
    r = raw_open()
    r.open_channel(1)
    q = r.queue_declare(1, "", exclusive=True)
    r.publish(1, "", q, b"x", immediate=True)
    expect_connection_close(r, 540, "NOT_IMPLEMENTED - immediate=true", R.BASIC_PUBLISH)


def test_duplicate_consumer_tag_530(raw_open):
    r = raw_open()
    r.open_channel(1)
    q = r.queue_declare(1, "", exclusive=True)
    args = R.short(0) + R.shortstr(q) + R.shortstr("t1") + R.bits(False, False, False, False) + \
        R.table({})
    r.send_method(1, R.BASIC_CONSUME, args)
    f = r.expect(R.BASIC_CONSUME_OK, 1)
    assert f.args.shortstr() == "t1"
    r.send_method(1, R.BASIC_CONSUME, args)
    expect_connection_close(r, 530, "NOT_ALLOWED - attempt to reuse consumer tag 't1'",
                            R.BASIC_CONSUME)


def test_qos_prefetch_size_540_raw(raw_open):
    r = raw_open()
    r.open_channel(1)
    r.send_method(1, R.BASIC_QOS, R.long_(10) + R.short(0) + R.bits(False))
    expect_connection_close(r, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)", R.BASIC_QOS)
