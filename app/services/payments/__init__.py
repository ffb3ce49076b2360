"""Money that changes hands (DESIGN "Money"): agencies' payment terms, card payments through
Stripe, offline payments, refunds, cancellation fees and the append-only ledger they all post to.
The rules are domain.payments'; these modules read, lock and write around them."""
