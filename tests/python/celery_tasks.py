"""Celery app used by test_celery.py, both in the test process and in the worker subprocess.

The worker is started with `celery -A celery_tasks worker` and finds its broker and queue in
the environment (WARREN_CELERY_BROKER, WARREN_CELERY_QUEUE).
"""

import os

from celery import Celery


def make_app(broker, queue):
    app = Celery("celery_tasks", broker=broker, backend="rpc://")
    app.conf.update(
        task_acks_late=True,
        task_default_queue=queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        worker_hijack_root_logger=False,
        # A short heartbeat keeps the worker event loop ticking, so SIGTERM (warm shutdown)
        # is acted on within a second or two instead of ~10 s. It also exercises heartbeats.
        broker_heartbeat=4,
    )

    @app.task(name="celery_tasks.add", shared=False)
    def add(x, y):
        return x + y

    @app.task(name="celery_tasks.fail", shared=False)
    def fail(msg):
        raise ValueError(msg)

    return app


app = make_app(os.environ.get("WARREN_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
               os.environ.get("WARREN_CELERY_QUEUE", "celery"))
