"""The edge service: polls meters of many models over Modbus TCP and RTU, publishes one
readings batch per poll cycle over MQTT, reports its own status and its meters', and carries
out commands from the platform.

It never talks to the database. Modules: ``config`` (what to poll and how: the configuration
file), ``lines`` (one Modbus connection and its worker), ``devices`` (the meters and who
answers where), ``decoding`` (register words to values), ``counters`` (reading flags),
``reading`` (one device's poll), ``poller`` (one poll cycle), ``schedule`` (when cycles
start), ``outbox`` (batches not acknowledged yet and the batch number, on disk),
``forwarder`` (outbox to MQTT, a bounded window at a time), ``memory`` (identities, baselines
and command results across restarts), ``status`` (birth, last will, meters' status),
``commands``, ``clock`` (clock sync state), ``service`` (the running gateway, over
``meterline.mqtt``).
"""
