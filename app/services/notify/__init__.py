"""Telling partners: webhooks and email from the partner events every committed write records.

Writes record partner events in their own transaction (triggers on audit_log and outbox; the
alert jobs insert theirs). Any worker fans an event out into webhook deliveries and emails
(`events`), and dispatchers in every worker send those (`deliveries`, `mail`), each row claimed
with a lease so that a worker that dies mid-send leaves it to another. Delivery is at least once;
the receiver dedupes on `webhook-id`.
"""
