"""The back office: housing accounts, bill runs, payment documents, payments and debts.

One folder per domain: ``accounts/`` (the account model, CSV import, the town generator),
``billrun/``, ``documents/``, ``scheduler/``; payments, penalties, reminders and reports
beside them. Billing imports ``meterline`` only, never another service.
"""
