"""API keys: no key, no service; a job is its key's alone (results and events too); admin sees all;
quotas answer 429 with Retry-After; probes and metrics stay open; the gRPC API checks the same keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import requests
from revive.v1 import gateway_pb2, gateway_pb2_grpc

from gateway.config import parse_config
from tests.cluster import GatewayThread, channel, gateway_config, targets
from tests.gateway.test_jobs import wait_for
from tests.photos import encode, portrait

ROOT = Path(__file__).resolve().parents[2]


def new_key(keys: Path, name: str, *flags: str) -> str:
    """A key made the way an operator makes one: the CLI prints the secret, the file keeps its hash."""
    result = subprocess.run([sys.executable, "-m", "gateway.auth", "new", "--file", str(keys), "--name", name, *flags],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    return result.stdout.strip()


@pytest.fixture
def keyed(detector, generator, upscaler, tmp_path):
    keys = tmp_path / "keys.json"
    secrets = {"a": new_key(keys, "team-a"), "b": new_key(keys, "team-b", "--max-jobs", "1"),
               "admin": new_key(keys, "ops", "--admin"), "slow": new_key(keys, "trickle", "--photos-per-minute", "2")}
    assert all(secret not in keys.read_text() for secret in secrets.values())  # only hashes are kept
    gateway = GatewayThread(gateway_config(tmp_path / "results", targets([detector]), targets([generator]),
                                           targets([upscaler]), "--api-keys-file", str(keys)))
    yield gateway, secrets
    gateway.stop()


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def post(url: str, secret: str | None, count: int = 1, path: str = "/v1/restorations") -> requests.Response:
    files = [("photos", (f"p{i}.jpg", encode(portrait(80, 96, seed=i)), "image/jpeg")) for i in range(count)]
    return requests.post(url + path, files=files, data={"candidates": "1"}, headers=auth(secret) if secret else {},
                         timeout=120)


def test_no_key_or_a_wrong_one_is_401_while_probes_and_metrics_stay_open(keyed):
    gateway, _ = keyed
    assert post(gateway.url, None).status_code == 401
    assert post(gateway.url, "rv_not-a-key").status_code == 401
    for path in ("/healthz", "/readyz", "/metrics", "/", "/v1/openapi.json"):
        assert requests.get(gateway.url + path, timeout=10).status_code == 200, path


def test_a_job_is_its_keys_alone_and_admin_sees_all(keyed):
    gateway, secrets = keyed
    reply = post(gateway.url, secrets["a"])
    assert reply.status_code == 200, reply.text
    job = reply.json()
    result = job["photos"][0]["candidates"][0]["url"]
    for secret, visible in ((secrets["a"], True), (secrets["b"], False), (secrets["admin"], True)):
        for path in (f"/v1/jobs/{job['id']}", result):
            status = requests.get(gateway.url + path, headers=auth(secret), timeout=10).status_code
            assert status == (200 if visible else 404), (path, visible, status)
    assert requests.delete(f"{gateway.url}/v1/jobs/{job['id']}", headers=auth(secrets["b"]), timeout=10).status_code == 404
    assert requests.get(gateway.url + result, headers=auth(secrets["a"]), timeout=10).status_code == 200


def test_the_page_cookie_carries_the_key(keyed):
    gateway, secrets = keyed
    session = requests.Session()
    assert session.post(f"{gateway.url}/v1/session", headers=auth("rv_wrong"), timeout=10).status_code == 401
    login = session.post(f"{gateway.url}/v1/session", headers=auth(secrets["a"]), timeout=10)
    assert login.status_code == 200 and login.json()["name"] == "team-a"
    reply = session.post(f"{gateway.url}/v1/jobs", files=[("photos", ("p.jpg", encode(portrait(64, 64)), "image/jpeg"))],
                         timeout=30)
    assert reply.status_code == 202  # no header: the cookie was enough
    assert "HttpOnly" in login.headers["Set-Cookie"] and "SameSite=Strict" in login.headers["Set-Cookie"]


def test_quotas_answer_429_with_retry_after(keyed):
    gateway, secrets = keyed
    first = post(gateway.url, secrets["b"], path="/v1/jobs")
    assert first.status_code == 202
    second = post(gateway.url, secrets["b"], path="/v1/jobs")
    assert second.status_code == 429 and "already has 1 jobs" in second.json()["error"]["message"]
    assert int(second.headers["Retry-After"]) > 0
    wait_for(gateway.url, first.json()["id"], ("done", "failed"), timeout=60, headers=auth(secrets["b"]))
    assert post(gateway.url, secrets["slow"], count=2).status_code == 200
    refused = post(gateway.url, secrets["slow"])
    assert refused.status_code == 429 and "2 photos a minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_the_grpc_api_wants_a_key_too(keyed):
    gateway, secrets = keyed
    stub = gateway_pb2_grpc.RestorationStub(channel(gateway.gateway.grpc_port))
    request = gateway_pb2.RestoreRequest(photos=[gateway_pb2.Photo(filename="p.jpg",
                                                                        content=encode(portrait(64, 64)))])
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.Restore(request, timeout=60))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    events = list(stub.Restore(request, timeout=120, metadata=(("authorization", f"Bearer {secrets['a']}"),)))
    assert any(event.HasField("done") for event in events)


def test_open_only_on_loopback(tmp_path):
    with pytest.raises(SystemExit):
        parse_config(["--host", "0.0.0.0", "--results-dir", str(tmp_path)])
    assert parse_config(["--host", "0.0.0.0", "--allow-anonymous", "true"]).allow_anonymous
    assert not parse_config(["--host", "127.0.0.1"]).api_keys_file
