"""schemathesis over ``/openapi.json`` of a live server: the schema is the validation.

Every operation of the document is called with generated valid and invalid
requests (an admin key, so every route is reachable). Besides "no server
error" and responses as documented (status codes, content types, schemas,
protected routes refusing requests without the key), the schema and the
validation must agree both ways: a request the schema allows is not refused
with 400 (``positive_data_acceptance``), and one it forbids is refused
(``negative_data_rejection``). The only refusals of schema-valid requests
allowed are those of :data:`UNSTATED_RULES`, which OpenAPI 3.0 cannot state.
"""

from __future__ import annotations

import os
import re

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import start_server, stop_server  # noqa: E402

# Examples per operation (52 operations: about a minute and a half on 2 cores);
# raise it for a deeper run (BANDITKIT_FUZZ_EXAMPLES=300).
EXAMPLES = int(os.environ.get("BANDITKIT_FUZZ_EXAMPLES", "40"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, ignored_auth, negative_data_rejection]
# Rules of the validation that no OpenAPI 3.0 keyword can state, by the message
# of their 400: a schema-valid request refused for one of these is expected.
UNSTATED_RULES = re.compile("|".join([
    r"\(ANALYST_MAX_RANGE_DAYS\)",  # the span between two dates
    # Namespace and feature names are object keys (no propertyNames in 3.0).
    r"must start with an ASCII character", r"not starting with '_'",
    r"feature names must be", r"pinned must not be empty",  # row ids as keys
    r"integer too large for a feature",  # JSON numbers: 1e20 and 10**20 read alike
    # Personalizer feature objects nest freely (free-form objects in the schema).
    r"\(the 32-bit float range the learner uses\)", r"\(the learner computes in 32-bit floats\)",
    # Relations between fields of one body.
    r"ids must be unique", r"duplicate (?:action|row) id", r"is not an action id",
    r"names unknown actions", r"excludes rows that are not candidates",
    r"excluded row ids are not among the candidates", r"must be a unique non-empty string",
    r"no page of \d+ slots satisfies the rules", r"no more than actions",
    r"baseline of another slot",
    r"among its excludedActions", r"every action is excluded", r"not among the actions",
    r"slots but only \d+ candidate rows", r"slots but only \d+ rows may be shown",
    r"must not be after to",
    r"longer than the maximum of 10 years",  # the sum of a duration's parts
    r"^Invalid settings: ", r"^policy arguments",  # Vowpal Wabbit reads the arguments
    r"metadata",  # its size as JSON text
]))


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


def _unstated_refusal(response) -> bool:
    """Whether ``response`` refuses for one of :data:`UNSTATED_RULES`.

    Also for an upload's content (files are decoded to be checked) and for the
    policy's arguments (Vowpal Wabbit parses them): no schema states those.
    """
    if response.status_code != 400:
        return False
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return (error.get("target") in ("file", "arguments")
            or bool(UNSTATED_RULES.search(error["message"])))


def _path_sent_as_generated(case) -> bool:
    """Whether the server reads the path parameters the fuzzer generated: it puts a
    '%' into the path as it is, so a generated ``%0D`` arrives as a carriage return."""
    return not any("%" in str(value) for value in (case.path_parameters or {}).values())


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_schema_and_validation_agree(case, fuzzed_server) -> None:
    response = case.call(
        base_url=fuzzed_server.url,
        headers={"Ocp-Apim-Subscription-Key": fuzzed_server.keys["admin"]},
        timeout=30,
    )
    checks = list(CHECKS)
    if response.status_code == 501:
        # Personalizer routes banditkit does not serve answer 501 by design (documented).
        checks.remove(not_a_server_error)
    elif response.status_code in (414, 431):
        # Past the server's request-line and header limits, which no schema
        # states: refused whatever the schema says of the values.
        checks.remove(negative_data_rejection)
    elif not _unstated_refusal(response) and _path_sent_as_generated(case):
        checks.append(positive_data_acceptance)
    case.validate_response(response, checks=checks)


@pytest.mark.slow
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
