"""Rating: prices consumption against tariffs and debits prepaid balances.

``core`` and ``tariffs`` are pure functions over numpy arrays (no Faust, Kafka or database);
``ledger`` writes a priced batch to PostgreSQL; ``app`` is the thin Faust adapter.
"""
