"""The back office: housing accounts, bill runs, payment documents, payments in and their split
between providers, debts, penalties, reminders and reports.

One folder per domain: ``accounts/`` (the account model, CSV import, the town generator),
``billrun/``, ``documents/``, ``scheduler/``, ``payments/``, ``penalties/``, ``reminders/``,
``reports/``. A service: billing imports ``meterline`` only, never another service.
"""
