"""The edge service: polls meters over Modbus TCP, publishes one readings batch per poll cycle
over MQTT, and turns relay commands from the platform into Modbus coil writes.

It never talks to the database. Modules: ``meters_config`` (which meters to poll),
``decoding`` (register words to values), ``modbus_endpoint`` (one Modbus TCP connection),
``meter_table`` (the meters and their serials), ``outbox`` (batches not acknowledged yet
and the batch number, on disk), ``forwarder`` (outbox to MQTT, a bounded window at a time),
``poller`` (one poll cycle), ``commands`` (relay commands), ``service`` (the running gateway,
over ``meterline.mqtt``).
"""
