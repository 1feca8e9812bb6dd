"""Amazon marketplaces: id, region, currency and the charset Amazon serves their report documents in."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Marketplace:
    country_code: str
    marketplace_id: str
    region: str  # NA, EU or FE: which sellingpartnerapi-<region> host serves it
    domain: str
    currency: str
    language: str
    # The charset of report documents, as named in the download's Content-Type.
    charset: str
    name: str


def _mp(
    cc: str, mid: str, region: str, domain: str, cur: str, lang: str, charset: str, name: str
) -> Marketplace:
    return Marketplace(cc, mid, region, domain, cur, lang, charset, name)


MARKETPLACES: dict[str, Marketplace] = {
    m.country_code: m
    for m in (
        _mp("US", "ATVPDKIKX0DER", "NA", "www.amazon.com", "USD", "en_US", "UTF-8", "Amazon.com"),
        _mp("CA", "A2EUQ1WTGCTBG2", "NA", "www.amazon.ca", "CAD", "en_CA", "UTF-8", "Amazon.ca"),
        _mp("MX", "A1AM78C64UM0Y8", "NA", "www.amazon.com.mx", "MXN", "es_MX", "UTF-8", "Amazon.com.mx"),
        _mp("BR", "A2Q3Y263D00KWC", "NA", "www.amazon.com.br", "BRL", "pt_BR", "UTF-8", "Amazon.com.br"),
        _mp("GB", "A1F83G8C2ARO7P", "EU", "www.amazon.co.uk", "GBP", "en_GB", "Cp1252", "Amazon.co.uk"),
        _mp("DE", "A1PA6795UKMFR9", "EU", "www.amazon.de", "EUR", "de_DE", "Cp1252", "Amazon.de"),
        _mp("FR", "A13V1IB3VIYZZH", "EU", "www.amazon.fr", "EUR", "fr_FR", "Cp1252", "Amazon.fr"),
        _mp("IT", "APJ6JRA9NG5V4", "EU", "www.amazon.it", "EUR", "it_IT", "Cp1252", "Amazon.it"),
        _mp("ES", "A1RKKUPIHCS9HS", "EU", "www.amazon.es", "EUR", "es_ES", "Cp1252", "Amazon.es"),
        _mp("NL", "A1805IZSGTT6HS", "EU", "www.amazon.nl", "EUR", "nl_NL", "Cp1252", "Amazon.nl"),
        _mp("SE", "A2NODRKZP88ZB9", "EU", "www.amazon.se", "SEK", "sv_SE", "Cp1252", "Amazon.se"),
        _mp("PL", "A1C3SOZRARQ6R3", "EU", "www.amazon.pl", "PLN", "pl_PL", "UTF-8", "Amazon.pl"),
        _mp("BE", "AMEN7PMS3EDWL", "EU", "www.amazon.com.be", "EUR", "fr_BE", "Cp1252", "Amazon.com.be"),
        _mp("IE", "A28R8C7NBKEWEA", "EU", "www.amazon.ie", "EUR", "en_IE", "Cp1252", "Amazon.ie"),
        _mp("TR", "A33AVAJ2PDY3EV", "EU", "www.amazon.com.tr", "TRY", "tr_TR", "UTF-8", "Amazon.com.tr"),
        _mp("AE", "A2VIGQ35RCS4UG", "EU", "www.amazon.ae", "AED", "en_AE", "UTF-8", "Amazon.ae"),
        _mp("SA", "A17E79C6D8DWNP", "EU", "www.amazon.sa", "SAR", "ar_SA", "UTF-8", "Amazon.sa"),
        _mp("EG", "ARBP9OOSHTCHU", "EU", "www.amazon.eg", "EGP", "ar_EG", "UTF-8", "Amazon.eg"),
        _mp("IN", "A21TJRUUN4KGV", "EU", "www.amazon.in", "INR", "en_IN", "UTF-8", "Amazon.in"),
        _mp("ZA", "AE08WJ6YKNBMC", "EU", "www.amazon.co.za", "ZAR", "en_ZA", "UTF-8", "Amazon.co.za"),
        _mp("JP", "A1VC38T7YXB528", "FE", "www.amazon.co.jp", "JPY", "ja_JP", "windows-31j", "Amazon.co.jp"),
        _mp("AU", "A39IBJ37TRP1C6", "FE", "www.amazon.com.au", "AUD", "en_AU", "UTF-8", "Amazon.com.au"),
        _mp("SG", "A19VAU5U5O7RUS", "FE", "www.amazon.sg", "SGD", "en_SG", "UTF-8", "Amazon.sg"),
    )
}

MARKETPLACES_BY_ID: dict[str, Marketplace] = {m.marketplace_id: m for m in MARKETPLACES.values()}


def python_codec(charset: str) -> str:
    """The Python codec for a charset as Amazon names it (Java names such as Cp1252, windows-31j)."""
    return {"cp1252": "cp1252", "windows-31j": "cp932", "utf-8": "utf-8"}.get(charset.lower(), charset)


# Marketplaces whose FBA stock is one pool (Pan-European FBA): getInventorySummaries answers the same
# units for each of them, so the pool's stock must be counted for one marketplace only.
PAN_EU_FBA = frozenset({"DE", "FR", "IT", "ES", "NL", "SE", "PL", "BE"})


def fba_pool(country_code: str) -> str:
    """The FBA stock pool a marketplace draws from: "EU" for Pan-European FBA, else its own."""
    return "EU" if country_code in PAN_EU_FBA else country_code


def fba_pool_home(marketplaces: list[str], main: str) -> dict[str, str]:
    """Per pool, the one marketplace whose products carry the pool's FBA stock.

    The main marketplace when it draws from the pool, else the first marketplace of the pool in the
    configured order.
    """
    homes: dict[str, str] = {}
    for code in [main, *marketplaces]:
        homes.setdefault(fba_pool(code), code)
    return homes


_SELLER_CENTRAL_HOST = re.compile(r"\.amazon\.([a-z.]+?)(?::\d+)?(?:/|$)", re.IGNORECASE)


def marketplace_from_seller_central_url(url: str) -> str:
    """The country code of a Seller Central URL, from `.amazon.<country>/` (the seed's `uri`)."""
    found = _SELLER_CENTRAL_HOST.search(url.strip())
    if found:
        suffix = "amazon." + found.group(1).lower().rstrip(".")
        for market in MARKETPLACES.values():
            if market.domain.removeprefix("www.") == suffix:
                return market.country_code
    raise ValueError(
        f"AMAZON_SELLER_CENTRAL_URL {url!r} names no known Amazon marketplace: "
        "expected a host such as sellercentral.amazon.de or sellercentral.amazon.co.uk"
    )
