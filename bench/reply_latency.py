"""Reply-to-answer latency with the default settings: how long after a neighbour comments on the
agent's post does the agent's answer appear on the Ledger?

Not part of ``make bench``: it waits for real polling intervals (two minutes by default), so a
sample takes up to that long. Run it alone::

    .venv/bin/python -m bench.reply_latency [--samples 5]

Everything is real except the model: the ``uvicorn crt_api:app`` subprocess with its embedded
Ledger and every heartbeat and reply-wake setting at its default, the heartbeat loop on, and the
fake Ollama answering at once (its own time is not what is measured). A neighbour agent
registered on that Ledger comments; the clock stops when the agent's reply to that comment is
on the Ledger. The expected figure is the time to the next reply poll (uniform over
``CRT_HEARTBEAT_REPLY_WAKE_SECONDS``) plus one heartbeat run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import TESTS
from crt_loops.ledger.client import LedgerClient

# bench.common put TESTS on sys.path: the test support package (fake Ollama, the service).
assert TESTS.is_dir()
from support import heartbeat_scripts as hs  # noqa: E402
from support.fake_ollama import FakeOllama, Reply  # noqa: E402
from support.service import Service  # noqa: E402

COMMENT_RE_KEY = "comment_id="
MD = "## Checklist\n- Answer every comment on your posts, briefly.\n"


def responder(request: dict[str, Any]) -> Reply:
    """Posts once; afterwards answers the newest comment the prompt shows on its own post."""
    text = hs.prompt_text(request)
    if "(no new comments on your posts)" not in text and COMMENT_RE_KEY in text:
        line = [ln for ln in text.splitlines() if COMMENT_RE_KEY in ln][-1]
        post_id = line.split("post_id=")[1].split()[0]
        comment_id = line.split(COMMENT_RE_KEY)[1].split()[0]
        action = {
            "type": "comment",
            "post_id": post_id,
            "parent_id": comment_id,
            "content": f"Thanks for asking ({comment_id}).",
        }
        return Reply(content=hs.decision([action], "answered a reply"))
    if "Your recent Ledger actions (do not repeat them)\n- sent: post" in text:
        return Reply(content="HEARTBEAT_OK")
    post = {"type": "post", "title": "Small steps", "content": "A note on small steps."}
    return Reply(content=hs.decision([post], "posted"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, FakeOllama() as fake:
        tmp = Path(scratch)
        (tmp / "HEARTBEAT.md").write_text(MD, encoding="utf-8")
        fake.route("HeartbeatDecision", responder)
        env = {"CRT_OLLAMA_HOST": fake.url, "CRT_HEARTBEAT_LOOP_ENABLED": "true"}
        with Service(tmp, env=env) as svc:
            api = httpx.Client(base_url=svc.url, timeout=30)
            cfg = {"enabled": True, "every": "30m"}
            api.post("/api/threads/default/heartbeat/config", json=cfg).raise_for_status()
            run = api.post("/api/threads/default/heartbeat/run-now").json()
            assert run["outcome"] == "acted", run
            post_id = run["actions"][0]["ledger_id"]
            base = api.get("/api/ledger/status").json()["url"]
            neighbour_key = LedgerClient(base, None).register("neighbour", "asks").api_key
            neighbour = LedgerClient(base, neighbour_key)
            interval = api.get("/api/heartbeat/status").json()["reply_watch"]["interval_seconds"]
            latencies = []
            for n in range(args.samples):
                # A random moment of the poll interval, as a real reply would come: the wait
                # for the next poll is then uniform over the interval.
                time.sleep(random.uniform(0, interval))
                comment = neighbour.create_comment(post_id, f"Why small steps? ({n})")
                asked = time.monotonic()
                while True:
                    comments = neighbour.list_comments(post_id).comments
                    if any(str(c.parent_id) == str(comment.id) for c in comments):
                        break
                    if time.monotonic() - asked > 600:
                        raise SystemExit(f"no answer to {comment.id} in 10 min:\n{svc.log()}")
                    time.sleep(1.0)  # the neighbour has 100 requests a minute
                latencies.append(time.monotonic() - asked)
                print(f"sample {n + 1}: answered in {latencies[-1]:.1f} s", flush=True)
            status = api.get("/api/heartbeat/status").json()
    result = {
        "samples": len(latencies),
        "seconds": [round(v, 1) for v in latencies],
        "mean_s": round(statistics.mean(latencies), 1),
        "median_s": round(statistics.median(latencies), 1),
        "max_s": round(max(latencies), 1),
        "reply_wakes": status["owner"]["reply_wakes"],
        "reply_watch": status["reply_watch"],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
