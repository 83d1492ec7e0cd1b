#!/usr/bin/env python3
"""Publishes a few orders to the `orders` exchange: a JSON body, a `shipping` header and a
priority. Which queues each reaches is decided by the selectors in definitions.json."""

import json

import pika

from common import connect

ORDERS = [
    # (routing key, order, shipping header, priority)
    ("orders.created", {"id": "o-1", "total": 1250.0, "customer": {"region": "eu"},
                        "lines": [{"sku": "PROMO_WINTER", "qty": 1}]}, "standard", 1),
    ("orders.created", {"id": "o-2", "total": 80.5, "customer": {"region": "eu"},
                        "lines": [{"sku": "BOOK-17", "qty": 2}]}, "express", 1),
    ("orders.created", {"id": "o-3", "total": 4200, "customer": {"region": "us"},
                        "lines": [{"sku": "PROMOTION", "qty": 1}]}, "standard", 9),
    ("orders.updated", {"id": "o-4", "total": 1001, "customer": {"region": "eu"},
                        "lines": [{"sku": "PROMO_SPRING", "qty": 3}]}, "express", 0),
    ("orders.created", {"id": "o-5", "total": 15, "customer": {"region": "apac"},
                        "lines": []}, None, None),
]


def main():
    conn = connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for key, order, shipping, priority in ORDERS:
        headers = {"shipping": shipping} if shipping else None
        props = pika.BasicProperties(content_type="application/json", headers=headers,
                                     priority=priority, delivery_mode=2)
        ch.basic_publish("orders", key, json.dumps({"order": order}).encode(), props)
        print("published %s %-14s total=%-7s region=%-5s shipping=%-8s priority=%s" % (
            order["id"], key, order["total"], order["customer"]["region"], shipping, priority))
    conn.close()


if __name__ == "__main__":
    main()
