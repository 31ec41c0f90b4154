"""Simultaneous answers for one student through a real threaded HTTP server."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from werkzeug.serving import make_server

from app.extensions import db
from app.models import Mastery, Response
from app.services.mastery import check_mastery
from tests.conftest import issue_key


def post(url: str, key: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_parallel_answers_and_retries_are_recorded_exactly_once(app, shipped_graph) -> None:
    key = issue_key(app, "concurrent-app")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1"
    try:
        status, student = post(f"{base}/students", key, {"external_id": "two-tabs"})
        assert status == 201
        url = f"{base}/students/{student['id']}/responses"
        exercises = list(shipped_graph.exercises)[:5]
        # 60 distinct answers, each sent twice (an app retry racing the original).
        payloads = [{"exercise_id": exercises[i % 5], "correct": i % 3 != 0,
                     "client_response_id": f"answer-{i}"} for i in range(60)]
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(lambda p: post(url, key, p), payloads + payloads))
    finally:
        server.shutdown()
        thread.join()

    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 60, 200: 60}, statuses
    by_client_id: dict[str, list[dict]] = {}
    for _, body in results:
        by_client_id.setdefault(body["client_response_id"], []).append(body)
    assert all(first == second for first, second in by_client_id.values())
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 60
        assert db.session.scalar(sa.select(sa.func.sum(Mastery.attempts))) == sum(
            len(shipped_graph.exercises[p["exercise_id"]].skill_ids) for p in payloads)
        # Every answer saw the state left by the one before it: the table equals a replay.
        assert check_mastery(db.session()) == []
