"""Rating: prices consumption against the tariff books and books it in the journal ledger.

``core`` and ``pricing`` are pure functions over numpy arrays (no Faust, Kafka or database):
``pricing.price_batch`` turns a batch of readings into charge lines, by zone, band and tariff
version (the kernel's ``meterline.tariffs.pricing``); ``tariffs`` reads what that needs of the
batch's accounts (tracks, monthly volumes); ``ledger`` books the lines in PostgreSQL (charge
lines, monthly volumes and one journal entry per batch); ``app`` is the thin Faust adapter.
"""
