#!/usr/bin/env python3
"""Consumes every queue of definitions.json and prints which order landed where. Stops after
`--idle` seconds without a delivery (default: run until interrupted)."""

import argparse
import json
import time

from common import connect, definitions


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=float, default=None,
                        help="exit after this many seconds without a delivery")
    args = parser.parse_args()

    conn = connect()
    ch = conn.channel()
    last = [time.monotonic()]

    def on_message(channel, method, properties, body, queue):
        order = json.loads(body)["order"]
        print("%-15s <- %s (routing key %s)" % (queue, order["id"], method.routing_key))
        channel.basic_ack(method.delivery_tag)
        last[0] = time.monotonic()

    for q in definitions()["queues"]:
        name = q["name"]
        ch.basic_consume(name, lambda c, m, p, b, name=name: on_message(c, m, p, b, name))
    print("consuming %s" % ", ".join(q["name"] for q in definitions()["queues"]))
    try:
        while args.idle is None or time.monotonic() - last[0] < args.idle:
            conn.process_data_events(time_limit=0.2)
    except KeyboardInterrupt:
        pass
    conn.close()


if __name__ == "__main__":
    main()
