"""The OpenAPI schema at /api/v1/schema/ is valid OpenAPI 3 and describes the whole REST table."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

# Every path of SPEC.md's REST table (drf-spectacular writes the trailing slash form).
SPEC_OPERATIONS = {
    ("/api/v1/auth/login/", "post"),
    ("/api/v1/auth/logout/", "post"),
    ("/api/v1/auth/me/", "get"),
    ("/api/v1/events/", "get"),
    ("/api/v1/events/", "post"),
    ("/api/v1/events/bulk/", "post"),
    ("/api/v1/events/{event_id}/", "get"),
    ("/api/v1/alerts/", "get"),
    ("/api/v1/alerts/", "post"),
    ("/api/v1/alerts/{alert_id}/", "get"),
    ("/api/v1/alerts/{alert_id}/", "patch"),
    ("/api/v1/alerts/{alert_id}/acknowledge/", "post"),
    ("/api/v1/alerts/{alert_id}/assign/", "post"),
    ("/api/v1/alerts/{alert_id}/resolve/", "post"),
    ("/api/v1/incidents/", "get"),
    ("/api/v1/incidents/", "post"),
    ("/api/v1/incidents/{incident_id}/", "get"),
    ("/api/v1/incidents/{incident_id}/", "patch"),
    ("/api/v1/incidents/{incident_id}/escalate/", "post"),
    ("/api/v1/incidents/{incident_id}/close/", "post"),
    ("/api/v1/agents/register/", "post"),
    ("/api/v1/agents/heartbeat/", "post"),
    ("/api/v1/agents/events/", "post"),
    ("/api/v1/agents/", "get"),
    ("/api/v1/agents/{agent_id}/", "get"),
    ("/api/v1/dashboard/statistics/", "get"),
}


@pytest.fixture
def schema() -> dict:
    response = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)  # raises on any violation of the OpenAPI 3 specification


def test_schema_has_every_operation_of_the_spec_table(schema):
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert SPEC_OPERATIONS <= operations


def test_schema_describes_bearer_jwt_and_agent_token_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["BearerJWT"]["scheme"] == "bearer"
    assert schemes["BearerJWT"]["bearerFormat"] == "JWT"
    assert schemes["AgentToken"]["in"] == "header"
    assert "Agent <agent_token>" in schemes["AgentToken"]["description"]
    paths = schema["paths"]
    assert paths["/api/v1/events/"]["get"]["security"] == [{"BearerJWT": []}]
    assert paths["/api/v1/agents/heartbeat/"]["post"]["security"] == [{"AgentToken": []}]
    assert paths["/api/v1/auth/login/"]["post"].get("security", []) in ([], [{}])


def test_schema_documents_the_event_list_filters(schema):
    names = {p["name"] for p in schema["paths"]["/api/v1/events/"]["get"]["parameters"]}
    assert {
        "computer",
        "event_code",
        "severity_min",
        "since",
        "until",
        "ai_score_min",
        "search",
        "ordering",
        "page",
        "page_size",
    } <= names


def test_schema_path_without_trailing_slash_and_yaml_default():
    response = APIClient().get("/api/v1/schema")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3")


def test_swagger_ui_page_points_at_the_schema():
    response = APIClient().get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    # The initialisation script is its own request (no inline script under the CSP).
    script = APIClient().get("/api/v1/docs/?script=")
    assert b'"/api/v1/schema"' in script.content
