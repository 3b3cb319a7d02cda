"""Payments in: every channel's payment one ledger entry, split between the account's
providers, services and periods; bank registries; settlement with the providers."""
