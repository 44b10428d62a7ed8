"""`make local` against a real org: the SALESFORCE_* variables make the same secret the sync function reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from nrtsync_local.stack import LocalDeploymentError, SalesforceOrg
from tests.support.salesforce import make_connected_app_keys

KEY = make_connected_app_keys().private_pem


def jwt_environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    key_file = tmp_path / "server.key"
    key_file.write_text(KEY)
    return {
        "SALESFORCE_LOGIN_URL": "https://acme.my.salesforce.com",
        "SALESFORCE_AUTH_FLOW": "jwt_bearer",
        "SALESFORCE_CLIENT_ID": "3MVG9consumer",
        "SALESFORCE_USERNAME": "integration@acme.com",
        "SALESFORCE_PRIVATE_KEY_FILE": str(key_file),
        **extra,
    }


def test_no_login_url_means_the_stand_in() -> None:
    assert SalesforceOrg.from_environ({}) is None


def test_a_jwt_org_without_an_audience_leaves_the_default_to_the_secret_model(tmp_path: Path) -> None:
    org = SalesforceOrg.from_environ(jwt_environ(tmp_path))

    assert org is not None
    assert "audience" not in org.secret
    assert (org.secret["username"], org.secret["private_key"]) == ("integration@acme.com", KEY)


def test_an_experience_cloud_audience_reaches_the_secret(tmp_path: Path) -> None:
    org = SalesforceOrg.from_environ(jwt_environ(tmp_path, SALESFORCE_AUDIENCE="https://acme.my.site.com/portal"))

    assert org is not None
    assert org.secret["audience"] == "https://acme.my.site.com/portal"


def test_a_my_domain_audience_is_refused_at_start_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(LocalDeploymentError, match="audience"):
        SalesforceOrg.from_environ(jwt_environ(tmp_path, SALESFORCE_AUDIENCE="https://acme.my.salesforce.com"))
