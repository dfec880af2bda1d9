"""The JSON API for people's programs (1С, a cooperative's site, a script): Bearer tokens made by the org admin,
each acting in one organisation with one role's rights (cloud/permissions.py), every change audited as
``api:<token name>``. Gateways and the payment provider have their own signed endpoints (cloud/ingest,
cloud/payments)."""
