"""Whether an e-mail address looks institutional (an academic domain), and why.

It informs, it never locks anyone out: a syntax check (no DNS) and a look-up in the shipped list
of university domains (``data/university_domains.csv``) and the academic suffixes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fedopt_core.accounts.fields import AccountInputError, read_text
from fedopt_core.config import get_settings
from fedopt_core.csvfiles import CsvFormatError, read_table

logger = logging.getLogger(__name__)

UNIVERSITY_DOMAINS_FILE = "university_domains.csv"

# Mail services anyone can sign up to: an address there says nothing about an institution.
PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
        "126.com",
        "zoho.com",
    }
)


@dataclass(frozen=True)
class EmailCheck:
    """Whether an address looks institutional, and why.  It informs; it never locks anyone out."""

    email: str | None
    domain: str | None
    verified: bool
    reason: str

    @property
    def label(self) -> str:
        # A domain check, not a proof of the address: only an identity provider verifies that.
        return "domain recognised" if self.verified else "domain not recognised"


@functools.lru_cache(maxsize=4)
def _load_university_domains(path: str, mtime: float) -> dict[str, str]:
    try:
        frame, errors = read_table(path, required=["domain", "name"])
    except (OSError, CsvFormatError) as exc:
        logger.warning("university domain list unusable: %s", exc)
        return {}
    for error in errors:
        logger.warning("university domain list: %s", error)
    country = frame["country"] if "country" in frame else pd.Series("", index=frame.index)
    return {
        d.strip().lower(): f"{n} ({c})" if c else n
        for d, n, c in zip(frame["domain"], frame["name"], country.fillna(""), strict=True)
    }


def university_domains(path: str | Path | None = None) -> dict[str, str]:
    """domain -> university name, from ``data/university_domains.csv`` (read once per file version)."""
    path = Path(path or get_settings().data_dir / UNIVERSITY_DOMAINS_FILE)
    if not path.exists():
        return {}
    return _load_university_domains(str(path), path.stat().st_mtime)


def check_institutional_email(email: str | None, *, domains: Mapping[str, str] | None = None) -> EmailCheck:
    """Syntax check (no DNS) and an academic-domain check of an address.

    Raises :class:`AccountInputError` (field ``email``) for an address that is not an e-mail
    address at all; a valid address outside the academic domains is "domain not recognised" with the reason.
    """
    from email_validator import EmailNotValidError, validate_email

    text = read_text(email, "email", max_len=254)
    if text is None:
        return EmailCheck(None, None, False, "no e-mail address given")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AccountInputError("email", str(exc)) from None
    domain = result.domain.lower()
    labels = domain.split(".")
    known = university_domains() if domains is None else domains
    for i in range(len(labels) - 1):
        parent = ".".join(labels[i:])
        if parent in known:
            return EmailCheck(
                result.normalized, domain, True, f"{parent} is listed as a university domain: {known[parent]}"
            )
    if labels[-1] == "edu":
        return EmailCheck(result.normalized, domain, True, ".edu is reserved for accredited US institutions")
    if len(labels) >= 3 and labels[-2] in {"edu", "ac"} and len(labels[-1]) == 2:
        suffix = "." + ".".join(labels[-2:])
        return EmailCheck(result.normalized, domain, True, f"{suffix} is an academic domain")
    if domain in PUBLIC_MAIL_DOMAINS:
        return EmailCheck(result.normalized, domain, False, f"{domain} is a public mail service, not an institution")
    return EmailCheck(
        result.normalized,
        domain,
        False,
        f"{domain} is not an academic domain (.edu, .ac.xx, .edu.xx) nor in the university list",
    )
