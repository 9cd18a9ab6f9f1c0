"""The origin behind Pushpin in bench/run-all: GET /jobs/ID/events is
answered with a GRIP stream hold on channel ID, so that Pushpin keeps the
client's SSE response open and writes to it what is published on ID.

WebSocket connections reach it as WebSocket-over-HTTP (a route with
over_http): POSTs of application/websocket-events. OPEN is accepted with
the grip extension; a text {"op":"subscribe","job":ID,...} is answered
with a control message that subscribes the connection to channel ID, then
{"op":"subscribed","job":ID}, as jobwire's pusher answers.

Run: python3 grip_origin.py PORT
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse_events(body):
    """The (kind, content) of each WebSocket-over-HTTP event in body."""
    while body:
        line, _, body = body.partition(b"\r\n")
        kind, _, size = line.partition(b" ")
        content = b""
        if size:
            n = int(size, 16)
            content, body = body[:n], body[n + 2:]
        yield kind, content


def text_event(content):
    return b"TEXT %x\r\n" % len(content) + content + b"\r\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        parts = self.path.split("?")[0].split("/")
        if len(parts) != 4 or parts[1] != "jobs" or parts[3] != "events":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Grip-Hold", "stream")
        self.send_header("Grip-Channel", parts[2])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        out = b""
        headers = {}
        for kind, content in parse_events(body):
            if kind == b"OPEN":
                out += b"OPEN\r\n"
                # Without a prefix, only "m:" messages would pass.
                headers["Sec-WebSocket-Extensions"] = 'grip; message-prefix=""'
            elif kind == b"TEXT":
                try:
                    job = json.loads(content)["job"]
                except (ValueError, KeyError, TypeError):
                    continue
                control = json.dumps({"type": "subscribe", "channel": job})
                ack = json.dumps({"op": "subscribed", "job": job},
                                 separators=(",", ":"))
                out += text_event(b"c:" + control.encode())
                out += text_event(ack.encode())
            elif kind in (b"CLOSE", b"DISCONNECT"):
                out += b"CLOSE\r\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/websocket-events")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format, *args):
        pass


ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
