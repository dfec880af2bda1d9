"""Sites: a transformer station's micro-balance for a period and the manager's dashboard of it."""
