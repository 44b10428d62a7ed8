"""`make local` against a real Zuora tenant: the ZUORA_* variables make the secret reconciliation reads, all
three or none (the stand-in); and the one CA bundle the functions trust holds every stand-in's CA."""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest

from nrtsync_local.stack import LocalDeploymentError, ZuoraTenant
from nrtsync_local.stack.zuora_tenant import ca_bundle

TENANT = {
    "ZUORA_BASE_URL": "https://rest.apisandbox.zuora.com",
    "ZUORA_CLIENT_ID": "0a1b2c3d-client",
    "ZUORA_CLIENT_SECRET": "s3cret=",
}


def test_no_zuora_variable_means_the_stand_in() -> None:
    assert ZuoraTenant.from_environ({}) is None
    assert ZuoraTenant.from_environ({"ZUORA_BASE_URL": "  ", "SALESFORCE_LOGIN_URL": "https://x"}) is None


def test_all_three_make_the_zuora_secret() -> None:
    tenant = ZuoraTenant.from_environ({name: f" {value} " for name, value in TENANT.items()})

    assert tenant is not None
    assert dict(tenant.secret) == {
        "base_url": "https://rest.apisandbox.zuora.com",
        "client_id": "0a1b2c3d-client",
        "client_secret": "s3cret=",
    }
    assert tenant.base_url == "https://rest.apisandbox.zuora.com"


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        (["ZUORA_BASE_URL"], "ZUORA_CLIENT_ID, ZUORA_CLIENT_SECRET"),
        (["ZUORA_BASE_URL", "ZUORA_CLIENT_ID"], "ZUORA_CLIENT_SECRET"),
        (["ZUORA_CLIENT_ID", "ZUORA_CLIENT_SECRET"], "ZUORA_BASE_URL"),
    ],
)
def test_some_but_not_all_is_an_error_naming_the_missing_ones(given: list[str], missing: str) -> None:
    with pytest.raises(LocalDeploymentError, match=f"but not {missing}: set all three"):
        ZuoraTenant.from_environ({name: TENANT[name] for name in given})


@pytest.mark.parametrize(
    "base_url", ["http://rest.zuora.com", "https://rest.zuora.com/v1", "not a url"], ids=["http", "path", "garbage"]
)
def test_a_base_url_the_credentials_model_refuses_is_an_error_naming_the_field(base_url: str) -> None:
    with pytest.raises(LocalDeploymentError, match="ZUORA_\\* variables do not make a valid secret: base_url"):
        ZuoraTenant.from_environ({**TENANT, "ZUORA_BASE_URL": base_url})


def test_the_ca_bundle_holds_the_public_roots_and_each_stand_ins_ca(tmp_path: Path) -> None:
    salesforce_ca = tmp_path / "sf.pem"
    salesforce_ca.write_text("-----BEGIN CERTIFICATE-----\nSALESFORCE\n-----END CERTIFICATE-----\n")
    zuora_ca = tmp_path / "zuora.pem"
    zuora_ca.write_text("-----BEGIN CERTIFICATE-----\nZUORA\n-----END CERTIFICATE-----\n")

    bundle = ca_bundle(tmp_path / "bundle.pem", [str(salesforce_ca), None, str(zuora_ca)], environ={})

    assert bundle is not None
    text = Path(bundle).read_text()
    assert "SALESFORCE" in text
    assert "ZUORA" in text
    assert Path(certifi.where()).read_text() in text  # a real org or tenant beside a stand-in stays trusted
    assert ca_bundle(tmp_path / "none.pem", [None, None], environ={}) is None


def test_the_ca_bundle_keeps_what_the_user_trusts(tmp_path: Path) -> None:
    # Given a user who trusts a proxy's CA through REQUESTS_CA_BUNDLE and another through SSL_CERT_FILE
    proxy, other = tmp_path / "proxy.pem", tmp_path / "other.pem"
    proxy.write_text("-----BEGIN CERTIFICATE-----\nPROXY\n-----END CERTIFICATE-----\n")
    other.write_text("-----BEGIN CERTIFICATE-----\nOTHER\n-----END CERTIFICATE-----\n")
    standin = tmp_path / "sf.pem"
    standin.write_text("-----BEGIN CERTIFICATE-----\nSALESFORCE\n-----END CERTIFICATE-----\n")
    environ = {"REQUESTS_CA_BUNDLE": str(proxy), "SSL_CERT_FILE": str(other)}

    # When the stack builds its bundle, twice (the second time REQUESTS_CA_BUNDLE may name its own bundle)
    bundle = tmp_path / "bundle.pem"
    ca_bundle(bundle, [str(standin)], environ=environ)
    ca_bundle(bundle, [str(standin)], environ={**environ, "REQUESTS_CA_BUNDLE": str(bundle)})

    # Then the user's CAs, the stand-in's and the public roots are all in it, once each
    text = bundle.read_text()
    assert [text.count(name) for name in ("OTHER", "SALESFORCE")] == [1, 1]
    assert Path(certifi.where()).read_text() in text


def test_with_no_stand_in_the_users_trust_is_left_alone(tmp_path: Path) -> None:
    proxy = tmp_path / "proxy.pem"
    proxy.write_text("PROXY")
    assert ca_bundle(tmp_path / "bundle.pem", [None], environ={"REQUESTS_CA_BUNDLE": str(proxy)}) is None
    assert not (tmp_path / "bundle.pem").exists()
