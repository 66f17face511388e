"""Who may see and control a job or a run: in the hosted demo, only the visitor who started it.

Each visitor of the hosted demo holds a private, random token (the Streamlit layer keeps it in the session and in
the page's URL, so it survives a reload). A job, and the run folder a pretraining job writes, record the token's
*tag* (a hash), never the token itself, so ``run.json`` and the job list reveal nothing that grants access.
Outside the demo the app has one user, and everything belongs to everyone.

Example:
    >>> token = new_visitor_token()
    >>> tag = owner_tag(token)
    >>> may_access(tag, token, demo=True), may_access(tag, new_visitor_token(), demo=True)
    (True, False)
    >>> may_access(None, None, demo=False)  # on your own machine
    True
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from core.errors import LabError
from core.limits import current_limits

TOKEN_BYTES = 18  # 144 random bits; URL-safe text of 24 characters


def new_visitor_token() -> str:
    """A fresh, unguessable visitor token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def owner_tag(token: str | None) -> str | None:
    """What a job or run records about its owner: a hash of the token (None for no owner, e.g. the CLI)."""
    if not isinstance(token, str) or not token:
        return None
    return hashlib.sha256(("llm-scratch-lab:" + token).encode("utf-8", "replace")).hexdigest()[:32]


def _demo(demo: bool | None) -> bool:
    return current_limits().demo if demo is None else demo


def may_access(owner: str | None, visitor: str | None, demo: bool | None = None) -> bool:
    """Whether ``visitor`` (a token) may see, stop, resume or delete what ``owner`` (a tag) started.

    In the hosted demo only the owner may; something without an owner (started by the CLI, or before owners
    were recorded) belongs to no visitor. Outside the demo, everyone may.
    """
    if not _demo(demo):
        return True
    return owner is not None and owner == owner_tag(visitor)


def check_access(owner: str | None, visitor: str | None, what: str = "This run", demo: bool | None = None) -> None:
    """Raise one sentence when ``visitor`` may not control ``owner``'s job or run (the id is not repeated)."""
    if not may_access(owner, visitor, demo):
        raise LabError(f"{what} belongs to another visitor of this demo; only they can see or change it. Start "
                       "a run of your own.")


def owner_of(record: Any) -> str | None:
    """The owner tag a ``run.json`` dict records (None when absent or not a tag)."""
    owner = record.get("owner") if isinstance(record, dict) else None
    return owner if isinstance(owner, str) and len(owner) == 32 else None
