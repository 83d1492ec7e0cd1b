"""Shared bits of the content-routing example: the broker URL and the definitions file."""

import json
import os
from pathlib import Path

import pika

DEFINITIONS = Path(__file__).resolve().parent / "definitions.json"


def connect():
    url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    return pika.BlockingConnection(pika.URLParameters(url))


def definitions():
    with open(DEFINITIONS) as f:
        return json.load(f)
