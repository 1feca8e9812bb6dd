"""The consultant's settings: the main marketplace from the Seller Central URL, the FBA pool's home, bad values."""

import pytest

from amazon_optiply.marketplaces import fba_pool_home, marketplace_from_seller_central_url
from amazon_optiply.resources import IntegrationSettings


@pytest.mark.parametrize(
    ("url", "country"),
    [
        ("https://sellercentral.amazon.de/home", "DE"),
        ("https://sellercentral.amazon.co.uk/inventory?tbla=1", "GB"),
        ("sellercentral.amazon.com", "US"),
        ("https://sellercentral.amazon.com.mx/", "MX"),
        ("https://sellercentral.amazon.co.jp/", "JP"),
    ],
)
def test_main_marketplace_comes_from_the_seller_central_url(url, country):
    assert marketplace_from_seller_central_url(url) == country
    assert IntegrationSettings(marketplaces="DE,US", seller_central_url=url).main == country


def test_an_unknown_seller_central_url_names_itself():
    with pytest.raises(ValueError, match=r"'https://sellercentral.amazon.xx/'.*sellercentral.amazon.de"):
        marketplace_from_seller_central_url("https://sellercentral.amazon.xx/")


def test_explicit_main_marketplace_overrides_the_url_and_the_default_is_the_first():
    assert IntegrationSettings(marketplaces="FR,DE").main == "FR"
    assert (
        IntegrationSettings(
            marketplaces="FR,DE", main_marketplace="de", seller_central_url="https://sellercentral.amazon.fr/"
        ).main
        == "DE"
    )


def test_a_pan_eu_pool_is_counted_in_the_main_marketplace_or_the_first_of_the_pool():
    assert fba_pool_home(["DE", "FR", "US"], "FR") == {"EU": "FR", "US": "US"}
    settings = IntegrationSettings(marketplaces="DE,IT,GB,US", main_marketplace="US")
    assert [settings.counts_pooled_fba(c) for c in ("DE", "IT", "GB", "US")] == [True, False, True, True]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("flavour", "sell-orders", "OPTIPLY_FLAVOUR must be 'full' or 'secondary'"),
        ("match_key", "ean", "OPTIPLY_MATCH_KEY must be 'eanCode' or 'skuCode'"),
        ("stock_source", "warehouse", "AMAZON_STOCK_SOURCE must be 'fba' or 'listing'"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_to_fix(field, value, message):
    with pytest.raises(ValueError, match=message):
        IntegrationSettings(marketplaces="DE", **{field: value})
