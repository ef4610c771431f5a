"""Request batching with TF Serving's ``--enable_batching`` semantics (``tfvrec serve --enable_batching``).

Requests to the same servable and signature (and the same non-batch inputs, e.g. ``k``,
and output filter) wait up to ``batch_timeout`` seconds to be joined into one batch of at
most ``max_batch_size`` rows, run as one call, and get their rows back. At most
``max_enqueued_batches`` batches wait for a thread (``num_batch_threads`` run them); a
request that would need one more is refused with UNAVAILABLE, as TF Serving's batch
scheduler refuses it when its queue is full. A request larger than ``max_batch_size``
rows runs as a batch of its own.

A batch whose call fails (e.g. one request names an unknown id, which fails the graph's
check for the whole batch) is run again request by request, so only the bad request
fails.
"""
import collections
import threading
import time

from tfvrec.serving.server.errors import unavailable


class _Task:
    def __init__(self, inputs, rows):
        self.inputs, self.rows = inputs, rows
        self.done = threading.Event()
        self.result = self.error = None


class _Batch:
    def __init__(self, key, run, now):
        self.key, self.run, self.created = key, run, now
        self.tasks, self.rows = [], 0


class BatchScheduler:
    """Shared by every servable of a server (like TF Serving's shared batch threads)."""

    def __init__(self, max_batch_size=32, batch_timeout=0.001, max_enqueued_batches=100, num_batch_threads=4):
        if max_batch_size < 1 or max_enqueued_batches < 1 or num_batch_threads < 1 or batch_timeout < 0:
            raise ValueError("batching: max_batch_size, max_enqueued_batches and num_batch_threads must be ≥ 1, "
                             "batch_timeout ≥ 0")
        self.max_batch_size, self.batch_timeout = max_batch_size, batch_timeout
        self.max_enqueued_batches = max_enqueued_batches
        self._open = {}  # key -> the batch still accepting requests
        self._ready = collections.deque()  # closed batches waiting for a thread
        self._cv = threading.Condition()
        self._stop = False
        self.stats = {"batches": 0, "requests": 0, "rows": 0, "rejected": 0, "fallbacks": 0}
        self._threads = [threading.Thread(target=self._work, name=f"tfvrec-batch-{n}", daemon=True)
                         for n in range(num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def _close(self, batch):
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        self._ready.append(batch)

    def submit(self, key, inputs, rows, run):
        """Run ``run(batched inputs)`` for this request as part of a batch; returns its outputs' rows.

        ``inputs`` maps names to numpy arrays whose first axis (``rows`` long) is the batch;
        ``run`` takes the same mapping (concatenated) and returns ``{output: numpy [rows, ...]}``."""
        task = _Task(inputs, rows)
        with self._cv:
            batch = self._open.get(key)
            if batch is not None and batch.rows + rows > self.max_batch_size:
                self._close(batch)
                batch = None
            if batch is None:
                if len(self._ready) + len(self._open) >= self.max_enqueued_batches:
                    self.stats["rejected"] += 1
                    raise unavailable(f"the batching queue is full ({self.max_enqueued_batches} batches waiting, "
                                      "--batching_max_enqueued_batches); retry later")
                batch = _Batch(key, run, time.monotonic())
                self._open[key] = batch
            batch.tasks.append(task)
            batch.rows += rows
            if batch.rows >= self.max_batch_size:
                self._close(batch)
            self._cv.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def _next(self):
        with self._cv:
            while not self._stop:
                if self._ready:
                    return self._ready.popleft()
                now = time.monotonic()
                wait = None
                for batch in list(self._open.values()):
                    left = batch.created + self.batch_timeout - now
                    if left <= 0:
                        self._close(batch)
                    else:
                        wait = left if wait is None else min(wait, left)
                if self._ready:
                    continue
                self._cv.wait(wait)
        return None

    def _work(self):
        import numpy as np
        while True:
            batch = self._next()
            if batch is None:
                return
            tasks = batch.tasks
            self.stats["batches"] += 1
            self.stats["requests"] += len(tasks)
            self.stats["rows"] += batch.rows
            try:
                if len(tasks) == 1:
                    tasks[0].result = batch.run(tasks[0].inputs)
                else:
                    joined = {name: np.concatenate([t.inputs[name] for t in tasks]) for name in tasks[0].inputs}
                    outputs = batch.run(joined)
                    start = 0
                    for task in tasks:
                        task.result = {name: value[start:start + task.rows] for name, value in outputs.items()}
                        start += task.rows
            except Exception as error:
                if len(tasks) == 1:
                    tasks[0].error = error
                else:  # one bad request must not fail the others: run each on its own
                    self.stats["fallbacks"] += 1
                    for task in tasks:
                        try:
                            task.result = batch.run(task.inputs)
                        except Exception as e:
                            task.error = e
            for task in tasks:
                task.done.set()

    def stop(self):
        with self._cv:
            self._stop = True
            self._cv.notify_all()
