"""meterline's shared kernel: settings, message contracts, database, money and units."""
