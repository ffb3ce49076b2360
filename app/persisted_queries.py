"""Persisted queries: Apollo's automatic persisted queries (APQ), and an allow-list for production.

APQ: a client sends `extensions.persistedQuery = {version: 1, sha256Hash}` without the document.
A worker that knows the hash runs the document it stored; one that does not answers
PERSISTED_QUERY_NOT_FOUND, and the client sends the document with its hash once, which the worker
checks and stores. Documents then travel as a hash, and a query fits in a GET URL.

Allow-list (PERSISTED_QUERIES_ONLY): only the documents of a registry file run, sent by hash or in
full; nothing is learned from requests.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from graphql import GraphQLError

from app.lru import LRU

# The store is per worker, bounded in count and in the size of what it keeps, so requests cannot
# grow it past about 32 MB. A larger document still runs when sent in full; it is not remembered.
MAX_STORED_DOCUMENT_CHARS = 32_768
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class PersistedQueryError(GraphQLError):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueries:
    def __init__(self, max_documents: int, registry: dict[str, str] | None = None) -> None:
        self._learned: LRU[str, str] = LRU(max_documents)
        # hash -> document. When set, only these run and nothing is learned.
        self.registry = registry

    def document(self, query: str | None, extensions: dict[str, Any] | None) -> str | None:
        """The document a request runs (None: it has none, which Strawberry answers with a 400);
        a PersistedQueryError when it names a hash we do not know, or may not run in this mode."""
        requested = _requested_hash(extensions)
        if self.registry is not None:
            return self._registered(query, requested)
        if requested is None:
            return query
        if query is None:
            known = self._learned.get(requested)
            if known is None:
                # Apollo's clients look for this message (older ones) or the code, and resend the document.
                raise PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
            return known
        if document_hash(query) != requested:
            raise PersistedQueryError("provided sha256Hash does not match the query", "PERSISTED_QUERY_HASH_MISMATCH")
        if len(query) <= MAX_STORED_DOCUMENT_CHARS:
            self._learned.put(requested, query)
        return query

    def _registered(self, query: str | None, requested: str | None) -> str:
        assert self.registry is not None
        if query is None:
            known = None if requested is None else self.registry.get(requested)
            if known is None:
                raise PersistedQueryError("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
            return known
        actual = document_hash(query)
        if requested is not None and actual != requested:
            raise PersistedQueryError("provided sha256Hash does not match the query", "PERSISTED_QUERY_HASH_MISMATCH")
        if actual not in self.registry:
            raise PersistedQueryError("Only registered documents run on this server (PERSISTED_QUERIES_ONLY)",
                                      "PERSISTED_QUERY_NOT_IN_LIST")
        return query


def _requested_hash(extensions: dict[str, Any] | None) -> str | None:
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise PersistedQueryError("extensions.persistedQuery must be {version: 1, sha256Hash}",
                                  "PERSISTED_QUERY_NOT_SUPPORTED")
    requested = persisted.get("sha256Hash")
    if not isinstance(requested, str) or not _SHA256_HEX.match(requested):
        raise PersistedQueryError("extensions.persistedQuery.sha256Hash must be 64 lower-case hex digits",
                                  "BAD_USER_INPUT")
    return requested


def load_registry(path: Path) -> dict[str, str]:
    """hash -> document, from an Apollo persisted query manifest (`{"format":
    "apollo-persisted-query-manifest", "operations": [{"id", "body", …}]}`) or a JSON object
    mapping each document's SHA-256 to the document (Relay's format). Every id must be the SHA-256
    of its document, the hash APQ clients send; a registry that disagrees is refused at startup."""
    content = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(content, dict) and isinstance(content.get("operations"), list):
        entries = [(operation.get("id"), operation.get("body")) for operation in content["operations"]]
    elif isinstance(content, dict):
        entries = list(content.items())
    else:
        raise ValueError(f"{path}: a persisted query registry is a JSON object")
    registry: dict[str, str] = {}
    for identifier, document in entries:
        if not isinstance(document, str) or identifier != document_hash(document):
            raise ValueError(f"{path}: the id {str(identifier)[:70]!r} is not the SHA-256 (hex) of its document")
        registry[identifier] = document
    return registry
