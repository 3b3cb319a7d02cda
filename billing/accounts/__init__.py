"""Housing accounts: the address hierarchy, what an account is billed on, the providers and
services on it, meters read by people, house meters; CSV import and the town generator."""
