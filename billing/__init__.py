"""The back office: bill runs, payment documents, payments in and their split between
providers, debts, penalties, reminders and reports. A service: it imports ``meterline`` only."""
