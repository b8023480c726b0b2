"""API docs: /openapi.json is the contract aimed at this gateway; Swagger UI's Try it out works."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from inference_club.gateway.web.docs import CONTRACT_ORIGIN, OPENAPI_FILE
from tests.support.processes import wait_for_models
from tests.web.conftest import Club

# The shared contract lives beside the repository (../shared/spec/openapi.json).
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "openapi.json"


@pytest.fixture(scope="module")
def member_key(club: Club) -> str:
    """An API key of a member whose provider serves ``docs-llm``."""
    club.add_member("wes")
    club.connect_provider("wes", "wes-home", "docs-llm")
    key = club.gateway.cli("keys", "create", "wes").stdout.strip()
    wait_for_models(club.gateway.v1, key, {"docs-llm"})
    return key


def _without_deployment(document: dict[str, Any]) -> dict[str, Any]:
    trimmed = json.loads(json.dumps(document))
    trimmed.pop("servers", None)
    trimmed.get("info", {}).pop("contact", None)
    return trimmed


def test_openapi_document_is_the_contract_for_this_gateway(club: Club) -> None:
    """Every operation and schema of the contract, with the servers naming this gateway."""
    served = httpx.get(f"{club.url}/openapi.json").json()
    contract_text = OPENAPI_FILE.read_text(encoding="utf-8")
    expected = json.loads(contract_text.replace(CONTRACT_ORIGIN, club.url))
    contract = json.loads(contract_text)

    assert served["servers"] == [{"url": f"{club.url}/v1", "description": "This gateway"}]
    assert _without_deployment(served) == _without_deployment(expected)
    assert served["components"] == contract["components"]
    assert {(path, method) for path, item in served["paths"].items() for method in item} == {
        (path, method) for path, item in contract["paths"].items() for method in item
    }
    assert CONTRACT_ORIGIN not in json.dumps(served)


@pytest.mark.skipif(not SHARED_SPEC.is_file(), reason="the shared contract is not beside the repo")
def test_packaged_contract_is_the_shared_one() -> None:
    """The copy the gateway serves is byte-for-byte the shared contract."""
    assert OPENAPI_FILE.read_bytes() == SHARED_SPEC.read_bytes()


def test_swagger_try_it_out_lists_this_gateways_models(
    club: Club, member_key: str, new_page: Callable[[], Page]
) -> None:
    """Authorize with a key, Try it out on GET /models, and the response names our model."""
    page = new_page()
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("inference.club API")
    expect(page.locator(".swagger-ui .servers select")).to_contain_text(f"{club.url}/v1")

    page.click(".swagger-ui .btn.authorize")
    page.fill(".swagger-ui .modal-ux input", member_key)
    page.click(".swagger-ui .modal-ux .auth-btn-wrapper .btn.authorize")
    page.click(".swagger-ui .modal-ux .btn-done")

    operation = page.locator("#operations-Models-listModels")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    with page.expect_response(f"{club.url}/v1/models") as answer:
        operation.locator(".execute").click()

    assert answer.value.status == 200
    assert answer.value.request.headers["authorization"] == f"Bearer {member_key}"
    body = operation.locator(".live-responses-table .response-col_description pre").first
    expect(body).to_contain_text('"docs-llm"')
    expect(body).to_contain_text('"owned_by": "wes-home"')
