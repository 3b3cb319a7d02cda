"""The scheduler service (`meterline scheduler`): runs jobs on cron-style schedules from the
settings, the bill runs asked for through the API, and resumes bill runs left unfinished."""
