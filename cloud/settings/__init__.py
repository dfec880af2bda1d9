"""The organisation's settings, kept by its admin: details, tariffs, net billing, the heating season, reminder
rules and the invoice note — one page each, a ``balans cloud`` command each and the JSON API."""
