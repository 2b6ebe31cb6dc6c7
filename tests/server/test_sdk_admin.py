"""Azure's ``PersonalizerAdministrationClient``, unchanged, on the model and log routes.

Against ``banditkit serve`` with two gunicorn workers and the learner process,
so an imported model must reach whichever worker answers the next rank, and
the learner must go on from it.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests

from banditkit.engine import Engine
from banditkit.vw import VWLearner
from tests.server.test_serve import (
    ACTIONS,
    CONTEXT,
    RANK,
    Served,
    configure,
    joined,
    kill,
    serve,
    wait_until,
)

pytest.importorskip("azure.ai.personalizer")

from azure.ai.personalizer import PersonalizerAdministrationClient  # noqa: E402
from azure.core.credentials import AzureKeyCredential  # noqa: E402
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError  # noqa: E402

# A real banditkit serve with two workers and its learner process.
pytestmark = pytest.mark.slow

MODEL_VERSION = "X-Banditkit-Model-Version"
# The banditkit features of CONTEXT and ACTIONS (one namespace each: the same dicts).
FEATURES = CONTEXT[0]
ACTION_FEATURES = [action["features"][0] for action in ACTIONS]


def _rank(served: Served, key: str, event_id: str) -> tuple[int, dict[str, float]]:
    """The model version that ranked and each action's probability."""
    response = requests.post(served.url + RANK, json={
        "contextFeatures": CONTEXT, "actions": ACTIONS, "eventId": event_id},
        headers={"Ocp-Apim-Subscription-Key": key}, timeout=10)
    assert response.status_code == 201, response.text
    ranking = {r["id"]: r["probability"] for r in response.json()["ranking"]}
    return int(response.headers[MODEL_VERSION]), ranking


def _reward(served: Served, key: str, event_id: str, value: float) -> None:
    response = requests.post(f"{served.url}/personalizer/v1.0/events/{event_id}/reward",
                             json={"value": value},
                             headers={"Ocp-Apim-Subscription-Key": key}, timeout=10)
    assert response.status_code == 204, response.text


def _expected(model: bytes, args: str) -> dict[str, float]:
    """The probabilities ``model`` gives the test's decision."""
    pmf = VWLearner(args=args, model_data=model).predict_one(FEATURES, ACTION_FEATURES)
    return {action["id"]: float(p) for action, p in zip(ACTIONS, pmf, strict=True)}


def _learn_some(served: Served, key: str, data_dir: Path, prefix: str, n: int) -> int:
    """Rank and reward ``n`` events, wait until the learner joined them and published
    what it learned; returns the model version then."""
    for i in range(n):
        event_id = f"{prefix}-{i}"
        _rank(served, key, event_id)
        _reward(served, key, event_id, 1.0 if i % 2 else 0.0)
    wait_until(lambda: len(joined(data_dir, prefix)) == n, seconds=30,
               what=f"the {prefix} events to be joined")
    seen: list[int] = []

    def stable() -> bool:  # the learner publishes in the step that logged them
        seen.append(_published_version(served, key))
        return len(seen) > 3 and len(set(seen[-3:])) == 1

    wait_until(stable, seconds=30, what="the learner to publish")
    return seen[-1]


def _published_version(served: Served, key: str) -> int:
    """The version of the model that ranks now, read without making a decision."""
    response = requests.get(served.url + "/personalizer/v1.0/model",
                            headers={"Ocp-Apim-Subscription-Key": key}, timeout=10)
    assert response.status_code == 200, response.text
    name = response.headers["Content-Disposition"].split('filename="')[1].rstrip('"')
    return int(name.removeprefix("model-v").removesuffix(".vw"))


@pytest.fixture
def admin_server(data_dir: Path, keys: dict[str, str], tmp_path: Path):
    # Decisions join 6 s after they are made: the ranks that follow an import
    # are all answered before the learner learns anything on top of it.
    configure(data_dir, reward_wait_seconds=6.0)
    served = serve(data_dir, tmp_path / "serve.log")
    yield served
    kill(served)


def _client(served: Served, key: str) -> PersonalizerAdministrationClient:
    return PersonalizerAdministrationClient(served.url, AzureKeyCredential(key))


def test_export_import_reset_and_logs_through_the_sdk(admin_server: Served,
                                                      keys: dict[str, str],
                                                      data_dir: Path) -> None:
    served, client_key = admin_server, keys["client"]
    admin = _client(served, keys["admin"])
    args = Engine.open(data_dir).settings.learner_args()

    version = _learn_some(served, keys["admin"], data_dir, "a", 12)
    exported = b"".join(admin.export_model(signed=False))
    assert version > 0 and _published_version(served, keys["admin"]) == version
    moved_on = _learn_some(served, keys["admin"], data_dir, "b", 12)  # the live model moves on
    assert moved_on > version

    log_before = len(served.log())
    admin.import_model(io.BytesIO(exported))
    imported_version = _published_version(served, keys["admin"])
    assert imported_version > moved_on
    # The next rank of either worker uses the import: a new version ranking as exported.
    expected = _expected(exported, args)
    # Concurrent fresh connections, as test_serve does, so both workers answer.
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: _rank(served, client_key, f"after-import-{i}"),
                                range(12)))
    assert {version for version, _ in answers} == {imported_version}
    for _, ranking in answers:
        assert ranking == pytest.approx(expected)
    rank_pids = {entry["pid"] for entry in served.log()[log_before:]
                 if entry.get("path") == RANK}
    assert len(rank_pids) == 2, "both workers should have ranked after the import"

    # Garbage is refused, named, and the imported model keeps ranking.
    with pytest.raises(HttpResponseError) as refused:
        admin.import_model(io.BytesIO(b"garbage"))
    assert refused.value.status_code == 400
    assert refused.value.error.code == "InvalidModelImportFormat"
    after_garbage, ranking = _rank(served, client_key, "after-garbage")
    assert after_garbage == imported_version
    assert ranking == pytest.approx(expected)

    # The learner continues from the import, with the events ranked after it.
    continued = _learn_some(served, keys["admin"], data_dir, "c", 8)
    snapshot = Engine.open(data_dir).store.latest_model()
    assert continued > after_garbage
    assert snapshot.origin == "learner" and snapshot.version == continued

    properties = admin.get_model_properties()
    created = datetime.fromisoformat(properties["creationTime"])
    modified = datetime.fromisoformat(properties["lastModifiedTime"])
    assert properties["creationTime"].endswith("Z") and created <= modified

    admin.reset_model()
    reset_version, _ = _rank(served, client_key, "after-reset")
    assert reset_version > continued
    fresh = VWLearner(args=args).to_bytes()
    reset_model = Engine.open(data_dir).store.latest_model()
    assert reset_model.origin == "reset" and reset_model.data == fresh
    assert datetime.fromisoformat(admin.get_model_properties()["creationTime"]) >= created

    logs = admin.get_log_properties()["dateRange"]
    first = min(e.timestamp for e in joined(data_dir, ""))
    assert logs["from"] <= first <= logs["to"]

    admin.delete_logs()
    with pytest.raises(ResourceNotFoundError) as gone:
        admin.get_log_properties()
    assert gone.value.error.code == "LogsPropertiesNotFound"
    assert joined(data_dir, "") == []
    assert any(entry.get("message") == "logs deleted" for entry in served.log())
    # Models stay; decisions go on, and are joined and logged again.
    assert b"".join(admin.export_model())
    _learn_some(served, keys["admin"], data_dir, "d", 2)
    assert admin.get_log_properties()["dateRange"]["from"] >= logs["to"]


def test_signed_export_imports_and_a_tampered_one_is_refused(admin_server: Served,
                                                             keys: dict[str, str],
                                                             data_dir: Path) -> None:
    admin = _client(admin_server, keys["admin"])
    signed = b"".join(admin.export_model(signed=True))
    assert signed.startswith(b"PK")
    admin.import_model(io.BytesIO(signed))
    key_file = data_dir / "model-signing.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    tampered = signed.replace(b"model.vw", b"model.vx")
    with pytest.raises(HttpResponseError) as refused:
        admin.import_model(io.BytesIO(tampered))
    assert refused.value.error.code == "InvalidModelMetadata"


def test_roles_guard_the_model_and_log_routes(admin_server: Served,
                                              keys: dict[str, str]) -> None:
    client, analyst = _client(admin_server, keys["client"]), _client(admin_server,
                                                                     keys["analyst"])
    with pytest.raises(HttpResponseError) as forbidden:
        b"".join(client.export_model())
    assert forbidden.value.status_code == 403
    exported = b"".join(analyst.export_model())  # analysts read the model
    for call in (lambda: analyst.import_model(io.BytesIO(exported)), analyst.reset_model,
                 analyst.delete_logs):
        with pytest.raises(HttpResponseError) as refused:
            call()
        assert refused.value.status_code == 403


def test_unserved_log_routes_answer_501_naming_the_alternative(admin_server: Served,
                                                               keys: dict[str, str]) -> None:
    for path in ("/personalizer/v1.0/logs/interactions",
                 "/personalizer/logs/observations?api-version=2022-09-01-preview"):
        response = requests.post(admin_server.url + path, data=b"\x00",
                                 headers={"Ocp-Apim-Subscription-Key": keys["admin"]},
                                 timeout=10)
        assert response.status_code == 501
        assert response.headers["x-ms-error-code"] == "NotImplemented"
        assert "/rank" in response.json()["error"]["message"] or "reward" in \
            response.json()["error"]["message"]
