"""Acceptance: a real Celery worker (acks_late, rpc:// results) runs 200 tasks."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import uid

HERE = Path(__file__).resolve().parent
N_TASKS = 200


@pytest.fixture
def celery_worker(broker, tmp_path):
    """Starts `celery worker` on a unique queue; yields (app, queue); stops the worker."""
    import celery_tasks

    queue = uid("celery")
    env = dict(os.environ)
    env.update(WARREN_CELERY_BROKER=broker.url, WARREN_CELERY_QUEUE=queue,
               PYTHONPATH=str(HERE) + os.pathsep + env.get("PYTHONPATH", ""))
    log_path = tmp_path / "worker.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker",
         "--pool=threads", "--concurrency=4", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "--loglevel=INFO", "-Q", queue,
         "-n", "%s@localhost" % queue],
        cwd=str(HERE), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    app = celery_tasks.make_app(broker.url, queue)
    try:
        yield app, queue, proc, log_path
    finally:
        app.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()


def _log_tail(path):
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-40:])


def test_celery_200_tasks(celery_worker, connect):
    app, queue, proc, log_path = celery_worker
    add = app.tasks["celery_tasks.add"]
    results = [add.delay(i, i) for i in range(N_TASKS)]
    deadline = time.monotonic() + 120
    values = []
    for r in results:
        if proc.poll() is not None:
            pytest.fail("celery worker exited with %s:\n%s" % (proc.returncode, _log_tail(log_path)))
        try:
            values.append(r.get(timeout=max(1, deadline - time.monotonic())))
        except Exception as e:
            pytest.fail("result %d: %r\nworker log:\n%s" % (len(values), e, _log_tail(log_path)))
    assert values == [2 * i for i in range(N_TASKS)]
    assert all(r.successful() for r in results)
    # acks_late: every task message was acked after it ran; nothing is left in the queue.
    ch = connect().channel()
    ok = ch.queue_declare(queue, passive=True)
    assert ok.method.message_count == 0


def test_celery_task_error_propagates(celery_worker):
    app, queue, proc, log_path = celery_worker
    r = app.tasks["celery_tasks.fail"].delay("boom")
    with pytest.raises(ValueError, match="boom"):
        r.get(timeout=60)
    assert app.tasks["celery_tasks.add"].delay(2, 3).get(timeout=60) == 5
