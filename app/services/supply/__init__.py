"""The supply side: reading a supplier's feed (HTTP, drop folder, webhook) into `domain.supply` records."""
