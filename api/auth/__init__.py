"""Who may do what: logging in (OAuth2 password flow, JWT + rotating refresh tokens), API keys,
the caller of each request and its scopes (`callers`), and the accounts it sees (`access`)."""
