"""The sections of the report, grouped by what they are about."""
