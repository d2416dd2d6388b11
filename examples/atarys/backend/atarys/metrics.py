"""Prometheus metrics in the text exposition format 0.0.4, by hand.

Gunicorn runs several worker processes and a scrape reaches only one of them.
Without ATARYS_METRICS_DIR each process counts for itself (fine with one
worker). With it, each process also writes its totals to its own file there
after every request, and a scrape adds up every file in the directory, so the
counters are those of the whole service. A file is never removed by the
application: the totals of a worker that exited stay in the sum, so counters
only go up while the directory lives; point it at a directory that is emptied
when the service stops (systemd's RuntimeDirectory=).
"""

import json
import logging
import os
import threading
import uuid

log = logging.getLogger("atarys")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kv):
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items()) + "}"


def _number(v):
    # repr() gives the shortest text that reads back as the same float
    # ("0.005", "1.0", "1e+16"), all valid in the exposition format.
    return repr(float(v))


class Metrics:
    def __init__(self, directory=""):
        self._lock = threading.Lock()
        self._requests = {}  # "method\0path\0status" -> count
        self._durations = {}  # "method\0path" -> [bucket counts..., sum, count]
        self._dir = directory
        self._file = None
        self._save_failed = False
        if directory:
            # A fresh name per process: a reused pid must not overwrite the
            # totals of the worker that had it before.
            self._file = os.path.join(directory, f"atarys-{os.getpid()}-{uuid.uuid4().hex}.json")
            # Raises OSError now, at startup, if the directory is unusable.
            os.makedirs(directory, exist_ok=True)
            self._write()

    def observe(self, method, path, status, seconds):
        key = f"{method}\0{path}\0{status}"
        hkey = f"{method}\0{path}"
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            h = self._durations.get(hkey)
            if h is None:
                h = self._durations[hkey] = [0] * len(BUCKETS) + [0.0, 0]
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1
            if self._file:
                self._save()

    def _save(self):
        """Write this process' totals; a failure costs metrics, never the request."""
        try:
            self._write()
        except OSError as e:
            if not self._save_failed:
                log.warning("cannot write metrics to '%s': %s", self._dir, e.strerror)
            self._save_failed = True
        else:
            self._save_failed = False

    def _write(self):
        data = json.dumps({"requests": self._requests, "durations": self._durations})
        tmp = self._file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, self._file)

    def _totals(self):
        """Counters of this process, or of every process sharing the directory."""
        if not self._dir:
            with self._lock:
                return dict(self._requests), {k: list(v) for k, v in self._durations.items()}
        try:
            names = sorted(os.listdir(self._dir))
        except OSError as e:
            log.warning("cannot read metrics from '%s': %s", self._dir, e.strerror)
            names = []
        requests, durations = {}, {}
        for name in names:
            if not (name.startswith("atarys-") and name.endswith(".json")):
                continue
            try:
                with open(os.path.join(self._dir, name), encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue  # gone or being replaced; the next scrape sees it
            for k, n in data.get("requests", {}).items():
                requests[k] = requests.get(k, 0) + n
            for k, h in data.get("durations", {}).items():
                acc = durations.setdefault(k, [0] * len(BUCKETS) + [0.0, 0])
                for i, v in enumerate(h):
                    acc[i] += v
        return requests, durations

    def render(self, database_up, chantiers_total):
        """The exposition text; chantiers_total None leaves that gauge out."""
        requests, durations = self._totals()
        out = [
            "# HELP atarys_http_requests_total HTTP requests answered, by route template.",
            "# TYPE atarys_http_requests_total counter",
        ]
        for key in sorted(requests):
            method, path, status = key.split("\0")
            out.append(
                f"atarys_http_requests_total{_labels(method=method, path=path, status=status)}"
                f" {requests[key]}"
            )
        out += [
            "# HELP atarys_http_request_duration_seconds Time to answer HTTP requests.",
            "# TYPE atarys_http_request_duration_seconds histogram",
        ]
        for key in sorted(durations):
            method, path = key.split("\0")
            h = durations[key]
            for i, bound in enumerate(BUCKETS):
                lb = _labels(method=method, path=path, le=_number(bound))
                out.append(f"atarys_http_request_duration_seconds_bucket{lb} {h[i]}")
            lb = _labels(method=method, path=path, le="+Inf")
            out.append(f"atarys_http_request_duration_seconds_bucket{lb} {h[-1]}")
            lb = _labels(method=method, path=path)
            out.append(f"atarys_http_request_duration_seconds_sum{lb} {_number(h[-2])}")
            out.append(f"atarys_http_request_duration_seconds_count{lb} {h[-1]}")
        out += [
            "# HELP atarys_database_up Whether SELECT 1 worked at this scrape (1) or not (0).",
            "# TYPE atarys_database_up gauge",
            f"atarys_database_up {1 if database_up else 0}",
        ]
        if chantiers_total is not None:
            out += [
                "# HELP atarys_chantiers_total Chantiers in the database at this scrape.",
                "# TYPE atarys_chantiers_total gauge",
                f"atarys_chantiers_total {chantiers_total}",
            ]
        return "\n".join(out) + "\n"
