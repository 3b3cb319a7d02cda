"""Tariff books and pricing, shared by rating (telemetry meters) and the bill run (meters read
by people, unmetered services): both price from the same books with the same tariff codes.

- ``model``: what a tariff is (plans, versions with validity dates, zones, bands, consumer
  groups, standing charges, benefits), as validated, immutable data.
- ``books``: the readable TOML file a provider's book is written in, and its checks.
- ``zones``: time-of-use windows on the wall clock, and where they fall in UTC (DST-safe).
- ``pricing``: the pure, vectorised core: consumption intervals in, charge lines out.
- ``reference``: the same pricing written plainly, one reading at a time (the tests' oracle
  and the benchmark's baseline).
- ``benefits``: a benefit on one service, within a norm, for the beneficiaries.
- ``store``: books in PostgreSQL (loading is idempotent; a new version never edits an old one).
- ``choices``: an account's plan among its provider's plans, changeable from the next period.
- ``commands``: ``meterline tariffs ...``.
- ``examples/``: example books for the demo (an electricity retailer, a water utility, a heat
  supplier, a housing company).

Pure modules (model, zones, pricing, reference, benefits) import no database, broker or
service code.
"""
