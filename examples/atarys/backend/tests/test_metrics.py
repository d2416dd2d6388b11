import os
import re
import tempfile
import unittest

from atarys import route_template
from atarys.metrics import Metrics

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? [0-9.e+-]+$')


class Render(unittest.TestCase):
    def test_exposition_format(self):
        m = Metrics()
        m.observe("GET", "/api/chantiers/<id>", 200, 0.003)
        m.observe("GET", "/api/chantiers/<id>", 200, 0.2)
        m.observe("POST", 'odd"path\\', 400, 20.0)
        text = m.render(True, 7)
        self.assertTrue(text.endswith("\n"))
        for line in text.splitlines():
            if not line.startswith("#"):
                self.assertRegex(line, SAMPLE)
        self.assertIn(
            'atarys_http_requests_total{method="GET",path="/api/chantiers/<id>",status="200"} 2',
            text,
        )
        # Buckets are cumulative.
        self.assertIn('path="/api/chantiers/<id>",le="0.005"} 1\n', text)
        self.assertIn('path="/api/chantiers/<id>",le="0.25"} 2\n', text)
        self.assertIn('path="/api/chantiers/<id>",le="+Inf"} 2\n', text)
        self.assertIn('path="odd\\"path\\\\",le="10.0"} 0\n', text)
        self.assertIn("atarys_database_up 1\n", text)
        self.assertIn("atarys_chantiers_total 7\n", text)

    def test_database_down(self):
        text = Metrics().render(False, None)
        self.assertIn("atarys_database_up 0\n", text)
        self.assertNotIn("atarys_chantiers_total", text)

    def test_shared_directory_adds_up_processes(self):
        with tempfile.TemporaryDirectory() as d:
            a, b = Metrics(d), Metrics(d)
            a.observe("GET", "/x", 200, 0.01)
            b.observe("GET", "/x", 200, 0.01)
            b.observe("GET", "/x", 500, 0.01)
            self.assertEqual(len(os.listdir(d)), 2)
            text = Metrics(d).render(True, 0)
            self.assertIn('{method="GET",path="/x",status="200"} 2\n', text)
            self.assertIn('{method="GET",path="/x",status="500"} 1\n', text)
            self.assertIn('atarys_http_request_duration_seconds_count{method="GET",path="/x"} 3\n', text)

    def test_lost_directory_costs_metrics_not_requests(self):
        with tempfile.TemporaryDirectory() as d:
            m = Metrics(os.path.join(d, "m"))
            for name in os.listdir(os.path.join(d, "m")):
                os.remove(os.path.join(d, "m", name))
            os.rmdir(os.path.join(d, "m"))
            with self.assertLogs("atarys", "WARNING") as logs:
                m.observe("GET", "/x", 200, 0.01)
                m.observe("GET", "/x", 200, 0.01)
                text = m.render(True, 0)
            self.assertEqual(len([r for r in logs.output if "cannot write" in r]), 1)
            self.assertIn("atarys_database_up 1\n", text)


class RouteTemplate(unittest.TestCase):
    def test_converters_dropped(self):
        self.assertEqual(route_template("/api/chantiers/<int:id>"), "/api/chantiers/<id>")
        self.assertEqual(route_template("/a/<name>/b/<path:rest>"), "/a/<name>/b/<rest>")


if __name__ == "__main__":
    unittest.main()
