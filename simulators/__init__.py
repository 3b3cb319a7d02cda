"""Simulated meters behind real Modbus servers, for development, tests and benchmarks.

``load_profiles`` holds the maths (pure), ``electricity_meter`` one meter's state,
``sdm120`` its Modbus register image, ``fleet`` the server presenting a fleet of them,
``service`` the entry point of ``meterline simulators``.
"""
