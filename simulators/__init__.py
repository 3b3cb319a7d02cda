"""Simulated meters behind real Modbus servers, for development, tests and benchmarks.

``load_profiles`` (consumption over time, pure maths), ``meter`` (one meter's state and what
its registers show), ``faults`` (what can go wrong with a meter), ``device`` (a meter's Modbus
image, by its device profile), ``serial_line`` (an RS-485 line on pseudo-terminals),
``state`` (the meters' non-volatile memory), ``config`` (what a simulator serves), ``fleet``
(the running servers and lines), ``service`` (``meterline simulators``).
"""
