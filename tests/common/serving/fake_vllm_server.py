"""A stand-in for vLLM's OpenAI server on loopback: /health (after a start-up delay), /metrics in
Prometheus text (V1 names), and streamed /v1/completions, one SSE chunk per token.

    python fake_vllm_server.py PORT [--die-after-s S]
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

START = time.monotonic()
READY_AFTER_S = 0.5
STATE = {"running": 0, "served": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self._send(200 if time.monotonic() - START > READY_AFTER_S else 503, "")
        elif self.path == "/metrics":
            with LOCK:
                running, served = STATE["running"], STATE["served"]
            self._send(
                200,
                "\n".join(
                    [
                        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
                        "# TYPE vllm:num_requests_running gauge",
                        f'vllm:num_requests_running{{engine="0",model_name="fake"}} {running}.0',
                        'vllm:num_requests_waiting{engine="0",model_name="fake"} 0.0',
                        f'vllm:kv_cache_usage_perc{{engine="0",model_name="fake"}} {0.01 * running}',
                        f'vllm:num_preemptions_total{{engine="0",model_name="fake"}} {float(served // 2)}',
                        'vllm:iteration_tokens_total_bucket{le="+Inf",model_name="fake"} 3.0',
                        "",
                    ]
                ),
            )
        else:
            self._send(404, "")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with LOCK:
            STATE["running"] += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(body["max_tokens"]):
            time.sleep(0.01)
            chunk = {"choices": [{"index": 0, "text": "", "token_ids": [i]}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        usage = {
            "choices": [],
            "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": body["max_tokens"]},
        }
        self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
        with LOCK:
            STATE["running"] -= 1
            STATE["served"] += 1


if __name__ == "__main__":
    port = int(sys.argv[1])
    if "--die-after-s" in sys.argv:
        time.sleep(float(sys.argv[sys.argv.index("--die-after-s") + 1]))
        print("fake server: simulated crash", flush=True)
        sys.exit(3)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
