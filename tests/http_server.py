"""A local HTTP file server on 127.0.0.1 for the download tests (no network): Range requests, and switches
to ignore Range, cut transfers short or fail."""

import http.server
import re
import threading


class FileServer:
    """Serves self.files; per-path behaviour: 'norange' (ignore Range), 'cut' (send cut_after bytes of the
    body, then close, for the first `cut_times` requests), 'fail' (HTTP fail_code for the first
    `fail_times` requests)."""

    def __init__(self, files: dict):
        self.files = dict(files)
        self.norange = set()
        self.cut_after, self.cut_times = None, 0
        self.fail_code, self.fail_times = 500, 0
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _empty(self, code, extra=()):
                self.send_response(code)
                for k, v in extra:
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                if outer.fail_times > 0:
                    outer.fail_times -= 1
                    return self._empty(outer.fail_code)
                data = outer.files.get(self.path)
                if data is None:
                    return self._empty(403 if self.path.startswith("/private") else 404)
                start, status = 0, 200
                if rng and self.path not in outer.norange:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(data):
                        return self._empty(416, [("Content-Range", f"bytes */{len(data)}")])
                    status = 206
                body = data[start:]
                self.send_response(status)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_times > 0:
                    outer.cut_times -= 1
                    self.wfile.write(body[: outer.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
