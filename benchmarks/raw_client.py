"""A minimal client for a Gradio app's queue API over one persistent HTTP connection: join the
queue, read the session's event stream until the result. Lighter than `gradio_client` (which
opens a new connection and a thread per call), so a load test measures the server, not the
client."""

from __future__ import annotations

import json
import uuid

import httpx


class RawClient:
    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url.rstrip("/") + "/gradio_api/", timeout=60)
        config = httpx.get(url.rstrip("/") + "/config", timeout=60).json()
        states = {c["id"] for c in config["components"] if c.get("type") == "state"}
        self.endpoints = {}
        for index, dep in enumerate(config["dependencies"]):
            if dep.get("api_name"):
                self.endpoints[dep["api_name"]] = (dep.get("id", index), [i in states for i in dep["inputs"]])
        self.session = uuid.uuid4().hex

    def call(self, api_name: str, *args):
        """Run one event; states are the server's (per session), so only the other inputs are given."""
        fn_index, is_state = self.endpoints[api_name.lstrip("/")]
        values = iter(args)
        data = [None if state else next(values) for state in is_state]
        joined = self.http.post(
            "queue/join", json={"data": data, "fn_index": fn_index, "session_hash": self.session, "event_data": None, "trigger_id": None}
        )
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", "queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    if not message.get("success"):
                        raise RuntimeError(f"{api_name} failed: {message.get('output', {}).get('error')}")
                    return message["output"]["data"]
        raise RuntimeError(f"{api_name}: the event stream ended without a result")
