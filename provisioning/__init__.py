"""The installer's tool: gateway identity, site configuration, enrolment, commissioning — and the demo."""
