"""Rating: prices consumption against tariffs and books it in the journal ledger.

``core``, ``tariffs`` and ``pricing`` are pure functions over numpy arrays (no Faust, Kafka or
database): ``pricing.price_batch`` turns a batch of readings into charge lines; ``ledger``
books them in PostgreSQL (charge lines and one journal entry per batch); ``app`` is the thin
Faust adapter.
"""
