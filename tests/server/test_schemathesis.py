"""schemathesis over ``/openapi.json`` of a live server: no 5xx, responses as documented.

Every operation of the document is called with generated valid and invalid
requests (an admin key, so every route is reachable). Besides "no server
error", responses must match their documented status codes, content types and
schemas, and protected routes must refuse requests without the key.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import start_server, stop_server  # noqa: E402

# Examples per operation; raise it for a deeper run (BANDITKIT_FUZZ_EXAMPLES=200).
EXAMPLES = int(os.environ.get("BANDITKIT_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, ignored_auth]


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    # Its own server: the fuzzer changes the settings and the policy.
    server = start_server(tmp_path_factory.mktemp("fuzz") / "data")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def api_schema(fuzzed_server):
    return schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_documented_responses(case, fuzzed_server) -> None:
    case.call_and_validate(
        base_url=fuzzed_server.url,
        headers={"Ocp-Apim-Subscription-Key": fuzzed_server.keys["admin"]},
        checks=CHECKS,
        timeout=30,
    )


def test_the_fuzzer_reached_the_engine(fuzzed_server) -> None:
    # Runs after the fuzzing above (file order): generated requests were both
    # accepted (decisions made) and rejected (400s), so the checks saw both paths.
    import requests

    text = requests.get(f"{fuzzed_server.url}/metrics", timeout=10).text
    decisions = [line for line in text.splitlines()
                 if line.startswith("banditkit_decisions_total")]
    assert decisions and all(float(line.split()[-1]) > 0 for line in decisions), decisions
    assert 'banditkit_rejected_requests_total{status="400"}' in text
    assert 'banditkit_rejected_requests_total{status="401"}' in text  # ignored_auth probes
