"""API keys with roles: 401 without a valid key, 403 with the wrong role."""

from __future__ import annotations

import pytest

from serving.keys import KeyStore, default_path, hash_key
from tests.server.conftest import auth

RANK = ("POST", "/personalizer/v1.0/rank",
        {"actions": [{"id": "a", "features": []}, {"id": "b", "features": []}]})
GET_SERVICE = ("GET", "/personalizer/v1.0/configurations/service", None)
PUT_POLICY = ("PUT", "/personalizer/v1.0/configurations/policy",
              {"name": "p", "arguments": "--cb_explore_adf --epsilon 0.2"})

ROUTES = [RANK, GET_SERVICE, PUT_POLICY]
# Which roles may call what (admin may call everything), by path and method.
ALLOWED = {
    RANK[:2]: {"client", "admin"},
    GET_SERVICE[:2]: {"analyst", "admin"},
    PUT_POLICY[:2]: {"admin"},
}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("role", ["client", "marketer", "analyst", "admin"])
def test_roles(client, keys, route, role: str) -> None:
    method, path, body = route
    response = client.open(path, method=method, headers=auth(keys[role]), json=body)
    if role in ALLOWED[route[:2]]:
        assert response.status_code in (200, 201), response.get_json()
    else:
        assert response.status_code == 403
        error = response.get_json()["error"]
        assert error["code"] == "Forbidden"
        assert repr(role) in error["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Ocp-Apim-Subscription-Key": ""},
        {"Ocp-Apim-Subscription-Key": "bk_nope_nope"},
        {"Ocp-Apim-Subscription-Key": "not-even-our-format"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["none", "empty", "unknown", "foreign", "basic-auth"],
)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_missing_or_wrong_key_is_401(client, route, headers) -> None:
    method, path, body = route
    response = client.open(path, method=method, headers=headers, json=body)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "Unauthorized"


def test_bearer_token_works_too(client, keys) -> None:
    method, path, body = RANK
    response = client.open(path, method=method, json=body,
                           headers={"Authorization": f"Bearer {keys['client']}"})
    assert response.status_code == 201


def test_revoked_key_is_401(app, data_dir, keys) -> None:
    app.config["AUTH_CACHE_SECONDS"] = 0
    from serving import auth as auth_module

    auth_module.init_app(app, data_dir=data_dir)  # apply the zero cache
    client = app.test_client()
    method, path, body = RANK
    assert client.open(path, method=method, json=body,
                       headers=auth(keys["client"])).status_code == 201
    store = KeyStore(path=default_path(data_dir))
    (record,) = [r for r in store.list() if r.role == "client"]
    assert store.revoke(record.key_id)
    assert not store.revoke(record.key_id)  # already revoked
    response = client.open(path, method=method, json=body, headers=auth(keys["client"]))
    assert response.status_code == 401


def test_keys_are_stored_hashed(data_dir, keys) -> None:
    path = default_path(data_dir)
    wal = path.with_name(path.name + "-wal")  # what is not checkpointed yet
    raw = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    for key in keys.values():
        assert key.encode() not in raw
        assert hash_key(key).encode() in raw


def test_public_routes_need_no_key(client) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_auth_can_be_disabled(tmp_path) -> None:
    from server import close_app, create_app

    app = create_app({"ENGINE_DATA_DIR": str(tmp_path), "AUTH_ENABLED": False,
                      "LEARNER_ENABLED": False})
    method, path, body = RANK
    assert app.test_client().open(path, method=method, json=body).status_code == 201
    close_app(app)


def test_unknown_role_is_refused(data_dir) -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        KeyStore(path=default_path(data_dir)).create(role="root")
