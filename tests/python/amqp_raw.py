"""A tiny raw AMQP 0-9-1 client for the tests that no client library can express.

It speaks frames directly over a socket: protocol header, method frames, content
header/body frames, heartbeats. Only what the tests need is implemented.
"""

import socket
import struct
import time
from decimal import Decimal

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

# (class_id, method_id)
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_FLOW = (20, 20)
CHANNEL_FLOW_OK = (20, 21)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
EXCHANGE_DECLARE = (40, 10)
EXCHANGE_DECLARE_OK = (40, 11)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
QUEUE_BIND = (50, 20)
QUEUE_BIND_OK = (50, 21)
QUEUE_DELETE = (50, 40)
QUEUE_DELETE_OK = (50, 41)
BASIC_QOS = (60, 10)
BASIC_QOS_OK = (60, 11)
BASIC_CONSUME = (60, 20)
BASIC_CONSUME_OK = (60, 21)
BASIC_CANCEL = (60, 30)
BASIC_PUBLISH = (60, 40)
BASIC_RETURN = (60, 50)
BASIC_DELIVER = (60, 60)
BASIC_GET = (60, 70)
BASIC_GET_OK = (60, 71)
BASIC_GET_EMPTY = (60, 72)
BASIC_ACK = (60, 80)
BASIC_RECOVER = (60, 110)
BASIC_RECOVER_OK = (60, 111)
BASIC_NACK = (60, 120)
CONFIRM_SELECT = (85, 10)
CONFIRM_SELECT_OK = (85, 11)
TX_SELECT = (90, 10)
TX_SELECT_OK = (90, 11)

CONTENT_METHODS = {BASIC_RETURN, BASIC_DELIVER, BASIC_GET_OK}


# ---------------------------------------------------------------- encoding

def octet(v):
    return struct.pack(">B", v)


def short(v):
    return struct.pack(">H", v)


def long_(v):
    return struct.pack(">I", v)


def longlong(v):
    return struct.pack(">Q", v)


def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256
    return struct.pack(">B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def bits(*flags):
    v = 0
    for i, f in enumerate(flags):
        if f:
            v |= 1 << i
    return struct.pack(">B", v)


def field_value(v):
    if isinstance(v, bool):
        return b"t" + octet(1 if v else 0)
    if isinstance(v, int):
        return b"l" + struct.pack(">q", v)
    if isinstance(v, (str, bytes)):
        return b"S" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if isinstance(v, (list, tuple)):
        body = b"".join(field_value(x) for x in v)
        return b"A" + long_(len(body)) + body
    if v is None:
        return b"V"
    raise TypeError(v)


def table_body(d):
    return b"".join(shortstr(k) + field_value(v) for k, v in (d or {}).items())


def table(d):
    body = table_body(d)
    return long_(len(body)) + body


def frame(ftype, channel, payload):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([FRAME_END])


def method_payload(method, args=b""):
    return struct.pack(">HH", *method) + args


# ---------------------------------------------------------------- decoding

class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("short payload")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def octet(self):
        return self.take(1)[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def long(self):
        return struct.unpack(">I", self.take(4))[0]

    def longlong(self):
        return struct.unpack(">Q", self.take(8))[0]

    def shortstr(self):
        n = self.octet()
        return self.take(n).decode()

    def longstr(self):
        n = self.long()
        return self.take(n)

    def table(self):
        n = self.long()
        sub = Reader(self.take(n))
        out = {}
        while sub.pos < len(sub.data):
            k = sub.shortstr()
            out[k] = sub.value()
        return out

    def value(self):
        t = chr(self.octet())
        if t == "t":
            return bool(self.octet())
        if t == "b":
            return struct.unpack(">b", self.take(1))[0]
        if t == "B":
            return self.octet()
        if t == "s":
            return struct.unpack(">h", self.take(2))[0]
        if t == "u":
            return self.short()
        if t == "I":
            return struct.unpack(">i", self.take(4))[0]
        if t == "i":
            return self.long()
        if t == "l":
            return struct.unpack(">q", self.take(8))[0]
        if t == "f":
            return struct.unpack(">f", self.take(4))[0]
        if t == "d":
            return struct.unpack(">d", self.take(8))[0]
        if t == "D":
            scale = self.octet()
            return Decimal(struct.unpack(">i", self.take(4))[0]).scaleb(-scale)
        if t == "S":
            return self.longstr()
        if t == "x":
            return self.longstr()
        if t == "A":
            n = self.long()
            sub = Reader(self.take(n))
            arr = []
            while sub.pos < len(sub.data):
                arr.append(sub.value())
            return arr
        if t == "T":
            return self.longlong()
        if t == "F":
            return self.table()
        if t == "V":
            return None
        raise ValueError("unknown field type %r" % t)


class Frame:
    def __init__(self, ftype, channel, payload):
        self.type = ftype
        self.channel = channel
        self.payload = payload
        self.method = None
        self.args = None
        if ftype == FRAME_METHOD and len(payload) >= 4:
            self.method = struct.unpack(">HH", payload[:4])
            self.args = Reader(payload[4:])

    def __repr__(self):
        return "Frame(type=%d, channel=%d, method=%r, payload=%r)" % (
            self.type, self.channel, self.method, self.payload[:60])


class Closed(Exception):
    """The server closed the socket (EOF or reset)."""


class Close:
    """A decoded connection.close or channel.close."""

    def __init__(self, f):
        self.channel = f.channel
        self.is_connection = f.method == CONNECTION_CLOSE
        self.code = f.args.short()
        self.text = f.args.shortstr()
        self.class_id = f.args.short()
        self.method_id = f.args.short()

    def __repr__(self):
        return "Close(%s, %d, %r, %d, %d)" % (
            "connection" if self.is_connection else "channel %d" % self.channel,
            self.code, self.text, self.class_id, self.method_id)


class RawConnection:
    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout
        self.start = None
        self.tune = None
        self.frame_max = 131072

    # -- raw IO
    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, ftype, channel, payload):
        self.send(frame(ftype, channel, payload))

    def send_method(self, channel, method, args=b""):
        self.send_frame(FRAME_METHOD, channel, method_payload(method, args))

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out waiting for data")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                raise Closed("connection reset")
            if not chunk:
                raise Closed("EOF with %d buffered bytes" % len(self.buf))
            self.buf += chunk

    def read_bytes(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._fill(n, deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._fill(7, deadline)
        ftype, channel, size = struct.unpack(">BHI", self.buf[:7])
        self._fill(7 + size + 1, deadline)
        payload = self.buf[7:7 + size]
        end = self.buf[7 + size]
        self.buf = self.buf[7 + size + 1:]
        assert end == FRAME_END, "bad frame end %r" % end
        return Frame(ftype, channel, payload)

    def read_method(self, timeout=None, skip_heartbeats=True):
        while True:
            f = self.read_frame(timeout)
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            assert f.type == FRAME_METHOD, "expected a method frame, got %r" % f
            return f

    def expect(self, method, channel=None, timeout=None):
        f = self.read_method(timeout)
        if f.method in (CONNECTION_CLOSE, CHANNEL_CLOSE) and f.method != method:
            raise AssertionError("expected %r, got %r" % (method, Close(f)))
        assert f.method == method, "expected %r, got %r" % (method, f)
        if channel is not None:
            assert f.channel == channel
        return f

    def read_content(self, timeout=None):
        """Read a content header and its body frames; returns (properties_raw, body)."""
        h = self.read_frame(timeout)
        assert h.type == FRAME_HEADER, h
        r = Reader(h.payload)
        r.short()  # class
        r.short()  # weight
        size = r.longlong()
        body = b""
        while len(body) < size:
            b = self.read_frame(timeout)
            assert b.type == FRAME_BODY, b
            body += b.payload
        return h.payload, body

    def expect_close(self, timeout=None):
        """Read until a connection.close or channel.close; returns a Close."""
        while True:
            f = self.read_method(timeout)
            if f.method in (CONNECTION_CLOSE, CHANNEL_CLOSE):
                return Close(f)
            if f.method in CONTENT_METHODS:
                self.read_content(timeout)

    def wait_closed(self, timeout=None):
        """Reads frames until the server closes the socket; returns the frames read."""
        frames = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                frames.append(self.read_frame(deadline - time.monotonic()))
            except Closed:
                return frames

    def close_socket(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- handshake
    def handshake(self, user="guest", password="guest", vhost="/", mechanism="PLAIN",
                  channel_max=None, frame_max=None, heartbeat=0, open_vhost=True,
                  client_properties=None):
        self.send(PROTOCOL_HEADER)
        f = self.expect(CONNECTION_START)
        a = f.args
        self.start = {
            "version_major": a.octet(),
            "version_minor": a.octet(),
            "server_properties": a.table(),
            "mechanisms": a.longstr().decode(),
            "locales": a.longstr().decode(),
        }
        if mechanism == "PLAIN":
            response = b"\x00" + user.encode() + b"\x00" + password.encode()
        elif mechanism == "AMQPLAIN":
            response = table_body({"LOGIN": user, "PASSWORD": password})
        else:
            raise ValueError(mechanism)
        props = client_properties
        if props is None:
            props = {"product": "warren-tests",
                     "capabilities": {"authentication_failure_close": True,
                                      "consumer_cancel_notify": True,
                                      "basic.nack": True,
                                      "publisher_confirms": True}}
        self.send_method(0, CONNECTION_START_OK,
                         table(props) + shortstr(mechanism) + longstr(response) + shortstr("en_US"))
        f = self.read_method()
        if f.method == CONNECTION_CLOSE:
            return Close(f)
        assert f.method == CONNECTION_TUNE, f
        a = f.args
        self.tune = {"channel_max": a.short(), "frame_max": a.long(), "heartbeat": a.short()}
        cm = self.tune["channel_max"] if channel_max is None else channel_max
        fm = self.tune["frame_max"] if frame_max is None else frame_max
        self.frame_max = fm
        self.send_method(0, CONNECTION_TUNE_OK, short(cm) + long_(fm) + short(heartbeat))
        if not open_vhost:
            return None
        self.send_method(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + bits(False))
        f = self.read_method()
        if f.method == CONNECTION_CLOSE:
            return Close(f)
        assert f.method == CONNECTION_OPEN_OK, f
        return None

    # -- helpers on channels
    def open_channel(self, ch):
        self.send_method(ch, CHANNEL_OPEN, shortstr(""))
        self.expect(CHANNEL_OPEN_OK, ch)

    def queue_declare(self, ch, name, durable=False, exclusive=False, auto_delete=False,
                      arguments=None):
        self.send_method(ch, QUEUE_DECLARE,
                         short(0) + shortstr(name) +
                         bits(False, durable, exclusive, auto_delete, False) + table(arguments))
        f = self.expect(QUEUE_DECLARE_OK, ch)
        return f.args.shortstr()

    def publish(self, ch, exchange, routing_key, body, mandatory=False, immediate=False,
                properties=b"\x00\x00", frame_max=None):
        fm = frame_max or self.frame_max
        self.send_method(ch, BASIC_PUBLISH,
                         short(0) + shortstr(exchange) + shortstr(routing_key) +
                         bits(mandatory, immediate))
        self.send_frame(FRAME_HEADER, ch,
                        short(60) + short(0) + longlong(len(body)) + properties)
        chunk = fm - 8
        for i in range(0, len(body), chunk):
            self.send_frame(FRAME_BODY, ch, body[i:i + chunk])

    def close_connection(self):
        self.send_method(0, CONNECTION_CLOSE, short(200) + shortstr("bye") + short(0) + short(0))
        self.expect(CONNECTION_CLOSE_OK, 0)
