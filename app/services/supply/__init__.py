"""The supply side: suppliers, their feeds (HTTP, drop folder, signed webhooks) and the runs that
reconcile what they send with StaySync's contracts (the rules are in domain.reconciliation)."""
