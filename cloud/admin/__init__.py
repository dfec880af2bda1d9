"""The organisation's administration: gateways, the audit log, backups."""
