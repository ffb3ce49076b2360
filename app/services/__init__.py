"""The use cases: what StaySync does, callable from the GraphQL API, jobs, the supplier sync and
webhooks alike.

A write is one transaction: the room types' advisory locks (sorted) -> a fresh read after the lock
-> the `domain` decision -> the writes, the audit entry, the version bump and the outbox row ->
commit -> publish (`app.services.changes`). A use case takes the caller (`Caller`) and plain
inputs, returns rows or plain values, and raises the failures of `app.services.errors`. Nothing
here knows Strawberry or HTTP.
"""
