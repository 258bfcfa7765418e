"""The legacy-stack peer for the bench: the canonical golden-path protocol on FastAPI 0.116,
uvicorn 0.35 and websockets 15, written the way such services usually are (FastAPI's
ConnectionManager pattern: a dict of user -> websockets, each event awaited on each of the
user's sockets).

    GOLDENPATH_JWT_SECRET=s bench/.venv/bin/python -m uvicorn --app-dir bench peer_fastapi:app \
        --host 127.0.0.1 --port 8082 --ws websockets --log-level warning --no-access-log

Auth: `Authorization: Bearer <HS256 JWT>` (or `?token=`), checked by hand (signature, `exp`,
`sub`); a bad token is refused before the upgrade. Each `user_message` starts the default run of
the reference router — agent_started (echoing the message `id` as `request_id`), agent_thinking,
tool_executing / tool_completed (`word_count` of the content), agent_completed — with `seq` 1..5,
delivered to every open connection of the sender and nobody else's.
"""

import base64
import hashlib
import hmac
import itertools
import json
import os
import time
import uuid
from datetime import datetime, timezone

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

SECRET = os.environ.get("GOLDENPATH_JWT_SECRET", "bench-secret").encode()
INSTANCE = uuid.uuid4().hex[:8]
_ids = itertools.count(1)

app = FastAPI()


def next_id(kind: str) -> str:
    return f"{kind}-{INSTANCE}-{next(_ids)}"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify(token: str):
    """The token's `sub` when it is a valid HS256 JWT signed with SECRET, else None."""
    try:
        head, body, sig = token.split(".")
        if json.loads(_b64(head)).get("alg") != "HS256":
            return None
        mac = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, _b64(sig)):
            return None
        claims = json.loads(_b64(body))
        if claims.get("exp", 0) < time.time():
            return None
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and sub else None
    except Exception:
        return None


class ConnectionManager:
    def __init__(self):
        self.active: dict[str, list[WebSocket]] = {}

    def connect(self, user: str, ws: WebSocket):
        self.active.setdefault(user, []).append(ws)

    def disconnect(self, user: str, ws: WebSocket):
        conns = self.active.get(user, [])
        if ws in conns:
            conns.remove(ws)
        if not conns:
            self.active.pop(user, None)

    async def send_to_user(self, user: str, frame: dict):
        text = json.dumps(frame)
        for ws in list(self.active.get(user, [])):
            try:
                await ws.send_text(text)
            except Exception:
                self.disconnect(user, ws)


manager = ConnectionManager()


def run_frame(kind, user, thread, run, seq, payload):
    return {"type": kind, "event_id": next_id("e"), "timestamp": now(), "user_id": user,
            "thread_id": thread, "run_id": run, "seq": seq, "payload": payload}


async def run_agent(user: str, msg: dict):
    payload = msg.get("payload") or {}
    content = payload.get("content", "")
    thread = payload.get("thread_id") or next_id("t")
    run = next_id("r")
    call = next_id("call")
    started = {"agent_name": "peer-fastapi"}
    if isinstance(msg.get("id"), str):
        started["request_id"] = msg["id"]
    events = [
        ("agent_started", started),
        ("agent_thinking", {"text": "Step 1 of 1: working on the request.", "step": 1}),
        ("tool_executing", {"tool_call_id": call, "tool_name": "word_count",
                            "parameters": {"text": content}}),
        ("tool_completed", {"tool_call_id": call, "tool_name": "word_count", "status": "ok",
                            "result": {"words": len(content.split()), "chars": len(content)}}),
        ("agent_completed", {"result": {"text": "Done: 1 tool call(s), 0 failed."},
                             "tool_calls": 1}),
    ]
    for seq, (kind, body) in enumerate(events, start=1):
        await manager.send_to_user(user, run_frame(kind, user, thread, run, seq, body))


@app.websocket("/ws")
async def ws_endpoint(websocket: WebSocket):
    auth = websocket.headers.get("authorization", "")
    token = auth[7:] if auth.startswith("Bearer ") else websocket.query_params.get("token", "")
    user = verify(token)
    if user is None:
        await websocket.close(code=1008)  # before accept: HTTP 403
        return
    await websocket.accept()
    await websocket.send_text(json.dumps({
        "type": "connection_established", "event_id": next_id("e"), "timestamp": now(),
        "payload": {"connection_id": next_id("c"), "user_id": user, "spec_version": "1",
                    "capabilities": []}}))
    manager.connect(user, websocket)
    try:
        while True:
            text = await websocket.receive_text()
            try:
                msg = json.loads(text)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and msg.get("type") == "user_message":
                await run_agent(user, msg)
            elif isinstance(msg, dict) and msg.get("type") == "ping":
                await websocket.send_text(json.dumps({
                    "type": "pong", "event_id": next_id("e"), "timestamp": now(),
                    "payload": {"request_id": msg["id"]} if isinstance(msg.get("id"), str) else {}}))
            else:
                await websocket.send_text(json.dumps({
                    "type": "error", "event_id": next_id("e"), "timestamp": now(),
                    "payload": {"code": "invalid_message", "message": "unsupported frame"}}))
    except (WebSocketDisconnect, RuntimeError):  # RuntimeError: closed while receiving
        pass
    finally:
        manager.disconnect(user, websocket)
