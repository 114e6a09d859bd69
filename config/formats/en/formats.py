"""Dates and times as the desk prints them everywhere (`trading.admin_panel.formatting.when`):
`2026-12-07 12:07:31 UTC`, not Django's `Dec. 7, 2026, 12:07 p.m.`. Used by the admin's stock
lists and pages (FORMAT_MODULE_PATH); how dates are typed into forms is left as it is."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
