"""The month's work of a site: readings, the draft, the review against last month, issuing, delivery."""
