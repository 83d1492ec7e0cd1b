#!/usr/bin/env python3
"""Declares the topology of definitions.json with plain AMQP (exchange.declare, queue.declare,
queue.bind), for a broker started without `--definitions definitions.json`. Users and
permissions in the file are left alone."""

from common import connect, definitions


def main():
    defs = definitions()
    conn = connect()
    ch = conn.channel()
    for x in defs["exchanges"]:
        ch.exchange_declare(x["name"], x["type"], durable=x["durable"],
                            auto_delete=x["auto_delete"], internal=x["internal"],
                            arguments=x["arguments"])
    for q in defs["queues"]:
        ch.queue_declare(q["name"], durable=q["durable"], auto_delete=q["auto_delete"],
                         arguments=q["arguments"])
    for b in defs["bindings"]:
        if b["destination_type"] == "queue":
            ch.queue_bind(b["destination"], b["source"], b["routing_key"],
                          arguments=b["arguments"])
        else:
            ch.exchange_bind(b["destination"], b["source"], b["routing_key"],
                             arguments=b["arguments"])
        selector = b["arguments"].get("x-selector") or b["arguments"].get("x-filter-jms-selector")
        print("bound %-15s <- %s %-15s %s" % (b["destination"], b["source"], b["routing_key"],
                                              selector or "(no selector)"))
    conn.close()


if __name__ == "__main__":
    main()
